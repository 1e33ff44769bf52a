// `moets bench` on the real CLI: `bench decode` on the CPU with the embedded model (a few steps) prints its table and
// writes JSON whose fields hold together; bad flags and what the CPU cannot run end in one line.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { DecodeBenchFile } from '../../src/bench/decode.ts';
import { assertUserError, runCli } from './run-cli.ts';

const work = mkdtempSync(join(tmpdir(), 'moets-cli-bench-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('moets bench', { concurrency: 4 }, () => {
  test('decode on the CPU: the table on stdout, sane JSON', async () => {
    const json = join(work, 'decode.json');
    const args = ['bench', 'decode', '--device', 'cpu', '--prompt-tokens', '6', '--steps', '3', '--warmup', '2', '--batch', '1,2', '--json', json];
    const r = await runCli(args, { timeoutMs: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^model +B +experts\/layer +ms\/step +tokens\/s +floor ms/);
    assert.match(r.stdout, /\ndefault +1 +2\.0\/8 /);
    assert.match(r.stdout, /batch 1: \d\/1 cells reach 85 % of the HBM floor/);
    const file = JSON.parse(readFileSync(json, 'utf8')) as DecodeBenchFile;
    assert.equal(file.tool, 'moets');
    assert.equal(file.kind, 'decode');
    assert.ok(file.ceilings.copyGBs > 0);
    assert.equal(file.cells.length, 2);
    const [c, pair] = [file.cells[0]!, file.cells[1]!];
    assert.deepEqual([c.model, c.batch, c.promptTokens, c.steps, c.warmupSteps, c.dtype], ['default', 1, 6, 3, 2, 'f32']);
    assert.equal(c.stepsReplayed, 3, 'after two warm-up steps every timed step replays the captured step');
    assert.ok(c.msPerStep > 0 && c.meanMsPerStep > 0 && c.prefillMs > 0);
    assert.ok(Math.abs(c.tokensPerSecond - 1000 / c.msPerStep) < 1e-9 * c.tokensPerSecond);
    assert.deepEqual([c.distinctExperts, c.numExperts, c.topK], [2, 8, 2]); // batch 1: exactly top-k per layer
    // The tied LM head alone is 32000 × 192 f32 values; the whole model is 11.3 M parameters.
    assert.ok(c.weightBytes > 32000 * 192 * 4 && c.weightBytes < 11.3e6 * 4, `weightBytes ${c.weightBytes}`);
    assert.ok(c.kvBytes > 0);
    assert.ok(Math.abs(c.floorMs - (c.weightBytes + c.kvBytes) / (file.ceilings.copyGBs * 1e6)) < 1e-9 * c.floorMs);
    assert.ok(Math.abs(c.pctOfFloor - (100 * c.floorMs) / c.msPerStep) < 1e-9 * c.pctOfFloor);
    // Batch 2: two tokens a step, 2 to 4 experts per layer, twice the KV cache.
    assert.ok(Math.abs(pair.tokensPerSecond - 2000 / pair.msPerStep) < 1e-9 * pair.tokensPerSecond);
    assert.ok(pair.distinctExperts >= 2 && pair.distinctExperts <= 4, `batch 2: ${pair.distinctExperts} experts per layer`);
    assert.equal(pair.kvBytes, 2 * c.kvBytes);
  });

  test('bad lists: --batch 0, --models nope', async () => {
    const [batch, models] = await Promise.all([
      runCli(['bench', 'decode', '--batch', '1,0']),
      runCli(['bench', 'decode', '--device', 'cpu', '--models', 'default,nope']),
    ]);
    assertUserError(batch, 2, /--batch must be a whole number ≥ 1, got '0'; pass e\.g\. --batch 1/);
    assertUserError(models, 2, /--models: unknown 'nope'; choose from default, Mixtral-8x7B, Qwen3-30B-A3B/);
  });

  test('what the CPU cannot run: full-size models, the MoE-layer benchmark', async () => {
    const [full, moe] = await Promise.all([
      runCli(['bench', 'decode', '--device', 'cpu', '--models', 'Mixtral-8x7B']),
      runCli(['bench', 'moe-layer', '--device', 'cpu']),
    ]);
    assertUserError(full, 1, /Mixtral-8x7B: full-size models run on the GPU only .*; pass --device cuda/);
    assertUserError(moe, 1, /moets bench moe-layer measures the GPU kernels; pass --device cuda/);
  });

  test('--json into a missing directory fails before any work', async () => {
    const r = await runCli(['bench', 'decode', '--device', 'cpu', '--json', join(work, 'no', 'such', 'x.json')]);
    assertUserError(r, 2, /--json '.*x\.json': directory '.*such' does not exist/);
  });

  test('bench --help names both benchmarks', async () => {
    const r = await runCli(['bench', '--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /moe-layer/);
    assert.match(r.stdout, /decode/);
  });
});

// The real `moets` CLI on transformers fixtures (test/fixtures/<name>/expected.json, made on the GPU machine):
// `generate --temperature 0 --format ids` prints transformers' greedy continuation, `logits --out` writes its
// logits (f32 little-endian [tokens, vocab], relative error ≤ 1e-4), `inspect --json` counts what the
// safetensors header holds, and, for a model with a tokenizer, text output is the continuation's text.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { DEFAULT_MODEL_DIR } from '../../src/models/load.ts';
import { relativeError } from '../util/compare.ts';
import { REPO_ROOT, runCli, type CliResult } from './run-cli.ts';

interface Expected {
  model_dir?: string;
  cases: { input_ids: number[]; logits_file: string; shape: [number, number] }[];
  greedy: { prompt_ids: number[]; new_ids: number[] };
}

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');
const work = mkdtempSync(join(tmpdir(), 'moets-cli-model-'));
after(() => rmSync(work, { recursive: true, force: true }));

function fixture(name: string): { dir: string; modelDir: string; expected: Expected } {
  const dir = join(FIXTURES, name);
  assert.ok(existsSync(join(dir, 'expected.json')), `fixture ${dir} is missing (made by the scripts in scripts/)`);
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  return { dir, modelDir: expected.model_dir ? resolve(REPO_ROOT, expected.model_dir) : dir, expected };
}

/** transformers generated without stopping; the CLI stops after the model's first end-of-sequence id. */
function untilEos(ids: readonly number[], modelDir: string): number[] {
  const eos = (JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { eos_token_id?: number | number[] }).eos_token_id;
  const eosIds = eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
  const stop = ids.findIndex((id) => eosIds.includes(id));
  return stop < 0 ? [...ids] : ids.slice(0, stop + 1);
}

function assertSuccess(r: CliResult): void {
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
}

/** Sum of element counts over the tensors of a safetensors header, read here independently of src/io. */
function headerParameterCount(file: string): number {
  const bytes = readFileSync(file);
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + Number(bytes.readBigUInt64LE(0)))) as Record<string, { shape?: number[] }>;
  let count = 0;
  for (const [name, info] of Object.entries(header)) {
    if (name !== '__metadata__') count += info.shape!.reduce((a, b) => a * b, 1);
  }
  return count;
}

describe('moets CLI on a transformers fixture', { concurrency: 3 }, () => {
  test('generate --temperature 0 --format ids prints the greedy continuation', async () => {
    const tiny = fixture('mixtral-hub');
    const { prompt_ids: prompt, new_ids: newIds } = tiny.expected.greedy;
    const r = await runCli(['generate', tiny.modelDir, '--ids', prompt.join(','), '--max-new-tokens', String(newIds.length),
      '--temperature', '0', '--format', 'ids']);
    assertSuccess(r);
    assert.equal(r.stdout, `${untilEos(newIds, tiny.modelDir).join(',')}\n`);
  });

  test('logits --out writes f32 little-endian [tokens, vocab] equal to transformers\' logits', async () => {
    const tiny = fixture('mixtral-hub');
    const c = tiny.expected.cases[0]!;
    const out = join(work, 'logits.f32');
    const r = await runCli(['logits', tiny.modelDir, '--ids', c.input_ids.join(','), '--out', out]);
    assertSuccess(r);
    assert.equal(r.stdout, `logits [${c.shape.join(', ')}] f32 → ${out}\n`);
    const bytes = readFileSync(out);
    assert.equal(bytes.byteLength, c.shape[0] * c.shape[1] * 4);
    const reference = readFileSync(join(tiny.dir, c.logits_file));
    const actual = Array.from({ length: bytes.byteLength / 4 }, (_, i) => bytes.readFloatLE(4 * i));
    const expected = Array.from({ length: reference.byteLength / 4 }, (_, i) => reference.readFloatLE(4 * i));
    const err = relativeError(actual, expected);
    assert.ok(err <= 1e-4, `relative error ${err.toExponential(2)} > 1e-4`);
    assert.deepEqual(readdirSync(work).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  });

  test('inspect --json counts the parameters and bytes the checkpoint holds', async () => {
    const tiny = fixture('mixtral-hub');
    const r = await runCli(['inspect', tiny.modelDir, '--json']);
    assertSuccess(r);
    const report = JSON.parse(r.stdout) as { modelType: string; layers: number; parameters: { total: number }; diskBytes: number };
    const config = JSON.parse(readFileSync(join(tiny.modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const files = readdirSync(tiny.modelDir).filter((f) => f.endsWith('.safetensors')).map((f) => join(tiny.modelDir, f));
    assert.equal(report.modelType, config['model_type']);
    assert.equal(report.layers, config['num_hidden_layers']);
    assert.equal(report.parameters.total, files.reduce((n, f) => n + headerParameterCount(f), 0));
    assert.equal(report.diskBytes, files.reduce((n, f) => n + statSync(f).size, 0));
  });
});

describe('moets CLI text output on the default model', () => {
  test('generate --prompt --temperature 0, run from another directory, prints the prompt and transformers\' greedy continuation', async () => {
    const model = fixture('default');
    assert.equal(model.modelDir, DEFAULT_MODEL_DIR, 'the default fixture is of the embedded default model');
    const tokenizer = loadTokenizer(model.modelDir);
    const { prompt_ids: prompt, new_ids: newIds } = model.expected.greedy;
    const promptText = tokenizer.decode(prompt, { skipSpecialTokens: true });
    assert.deepEqual(tokenizer.encode(promptText), prompt, 'the fixture prompt is the encoding of its text');
    const continuation = untilEos(newIds.slice(0, 16), model.modelDir);
    // No MODEL: the embedded default model, found from the package root whatever the working directory.
    const r = await runCli(['generate', '--prompt', promptText, '--max-new-tokens', '16', '--temperature', '0'], { cwd: work });
    assertSuccess(r);
    assert.equal(r.stdout, `${tokenizer.decode([...prompt, ...continuation], { skipSpecialTokens: true })}\n`);
  });
});

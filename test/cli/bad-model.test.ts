// Bad model directories and bad token ids on the real `moets` CLI: a truncated or corrupt safetensors, a config
// with a negative or missing size, ids outside the vocabulary, an unavailable device, a text prompt without
// tokenizer.json. Each ends in one `moets: …` line on stderr and exit 1, without a stack trace and without
// leaving a partial --out file behind.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';
import { assertUserError, runCli } from './run-cli.ts';

const work = mkdtempSync(join(tmpdir(), 'moets-cli-bad-model-'));
after(() => rmSync(work, { recursive: true, force: true }));

// A valid tiny Mixtral (vocabulary 97) and broken copies of it.
const good = writeTinyCheckpoint(TINY_CONFIGS['mixtral']!, 'hub', 1, join(work, 'good'));

function brokenCopy(name: string, breakIt: (dir: string) => void): string {
  const dir = join(work, name);
  cpSync(good, dir, { recursive: true });
  breakIt(dir);
  return dir;
}

function editConfig(dir: string, change: (config: Record<string, unknown>) => void): void {
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  change(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
}

describe('moets CLI rejects bad models and bad ids', { concurrency: 4 }, () => {
  test('token ids outside the vocabulary', async () => {
    const r = await runCli(['generate', good, '--ids', '3,1,400', '--max-new-tokens', '2']);
    assertUserError(r, 1, /token id 400 is outside the model's vocabulary \[0, 97\)/, false);
  });

  test('a truncated safetensors file, and no partial --out file', async () => {
    const dir = brokenCopy('truncated', (d) => truncateSync(join(d, 'model.safetensors'), 20_000));
    const out = join(dir, 'logits.f32');
    const r = await runCli(['logits', dir, '--ids', '1,2', '--out', out]);
    assertUserError(r, 1, /model\.safetensors: truncated: .* the file may be incomplete, download it again/);
    assert.ok(!existsSync(out), 'no --out file after a failure');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });

  test('a corrupt safetensors header', async () => {
    const dir = brokenCopy('corrupt-header', (d) => {
      const bytes = readFileSync(join(d, 'model.safetensors'));
      bytes.write('garbage!', 8, 'latin1'); // the JSON header starts at byte 8
      writeFileSync(join(d, 'model.safetensors'), bytes);
    });
    const r = await runCli(['inspect', dir]);
    assertUserError(r, 1, /model\.safetensors: the header does not start with '\{' .*; this is not a safetensors file or it is corrupt/);
  });

  test('a config with a negative size', async () => {
    const dir = brokenCopy('negative-size', (d) => editConfig(d, (c) => { c['hidden_size'] = -4; }));
    const r = await runCli(['generate', dir, '--ids', '1,2']);
    assertUserError(r, 1, /config\.json: "hidden_size" must be an integer ≥ 1, got -4/, false);
  });

  test('a config with a missing size', async () => {
    const dir = brokenCopy('missing-size', (d) => editConfig(d, (c) => { delete c['num_hidden_layers']; }));
    const r = await runCli(['inspect', dir, '--json']);
    assertUserError(r, 1, /config\.json: missing "num_hidden_layers"/, false);
  });

  test('--device cuda where the CUDA driver library cannot be loaded', async () => {
    const libcuda = join(work, 'no-such-libcuda.so.1');
    const r = await runCli(['logits', good, '--ids', '1', '--out', join(work, 'cuda.f32'), '--device', 'cuda'], { env: { MOETS_LIBCUDA: libcuda } });
    assertUserError(r, 1, /MOETS_LIBCUDA=.*no-such-libcuda\.so\.1 does not exist; point MOETS_LIBCUDA at libcuda\.so\.1/);
  });

  test('a text prompt for a model without tokenizer.json', async () => {
    const r = await runCli(['generate', good, '--prompt', 'Call me Ishmael.']);
    assertUserError(r, 1, /tokenizer\.json does not exist: text prompts need tokenizer\.json \(use --ids/, false);
  });
});

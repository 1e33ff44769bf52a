// Bad flags and paths on the real `moets` CLI: each must end in one `moets: …` line on stderr, exit 2 for a usage
// error and 1 otherwise, no stack trace. None of these needs a model, so the processes run side by side.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { assertUserError, runCli } from './run-cli.ts';

const emptyDir = mkdtempSync(join(tmpdir(), 'moets-cli-empty-'));
after(() => rmSync(emptyDir, { recursive: true, force: true }));

describe('moets CLI rejects bad flags', { concurrency: 4 }, () => {
  test('--max-new-tokens -1', async () => {
    const r = await runCli(['generate', '--ids', '1,2', '--max-new-tokens', '-1']);
    assertUserError(r, 2, /--max-new-tokens must be a whole number ≥ 1, got '-1'/);
  });

  test('--temperature abc', async () => {
    const r = await runCli(['generate', '--prompt', 'hi', '--temperature', 'abc']);
    assertUserError(r, 2, /--temperature must be a number from 0 to 100, got 'abc'/);
  });

  test('--ids with a non-number', async () => {
    const r = await runCli(['logits', '--ids', '3,x', '--out', join(emptyDir, 'l.f32')]);
    assertUserError(r, 2, /--ids item 2 'x' is not a token id/);
  });

  test('both --prompt and --ids', async () => {
    const r = await runCli(['generate', '--prompt', 'hi', '--ids', '1']);
    assertUserError(r, 2, /--prompt and --ids were both given; pass exactly one/);
  });

  test('neither --prompt nor --ids', async () => {
    const r = await runCli(['generate', '--max-new-tokens', '3']);
    assertUserError(r, 2, /neither --prompt nor --ids was given; pass exactly one/);
  });

  test('unknown flag, with a suggestion on the same line', async () => {
    const r = await runCli(['generate', '--prompt', 'hi', '--max-new-token', '3']);
    assertUserError(r, 2, /unknown option '--max-new-token' \(Did you mean --max-new-tokens\?\); run 'moets generate --help'/);
  });

  test('unknown --device, and an unknown MOETS_DEVICE', async () => {
    const [flag, env] = await Promise.all([
      runCli(['generate', '--prompt', 'hi', '--device', 'tpu']),
      runCli(['generate', '--prompt', 'hi'], { env: { MOETS_DEVICE: 'gpu0' } }),
    ]);
    assertUserError(flag, 2, /unknown device 'tpu' \(from --device\); use cpu, cuda or auto/);
    assertUserError(env, 2, /unknown device 'gpu0' \(from MOETS_DEVICE\); use cpu, cuda or auto/);
  });

  test('a MODEL path that does not exist', async () => {
    const r = await runCli(['inspect', join(emptyDir, 'no-such-model')]);
    assertUserError(r, 1, /model directory '.*no-such-model' does not exist; pass a directory with config\.json/);
  });

  test('a MODEL directory without config.json', async () => {
    const r = await runCli(['generate', emptyDir, '--ids', '1,2']);
    assertUserError(r, 1, /has no config\.json; pass a Hugging Face model directory/);
  });

  test('--help describes every flag and its default, on stdout, exit 0', async () => {
    const r = await runCli(['generate', '--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    for (const flag of ['--prompt', '--ids', '--max-new-tokens', '--temperature', '--top-k', '--top-p', '--seed', '--format', '--device']) {
      assert.ok(r.stdout.includes(flag), `--help lacks ${flag}:\n${r.stdout}`);
    }
    assert.match(r.stdout, /\(default: 64\)/);
    assert.match(r.stdout, /\(default: 0\.8\)/);
    assert.match(r.stdout, /MOETS_DEVICE/);
  });
});

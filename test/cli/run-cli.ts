// Runs the real `moets` CLI (node bin/moets.js) in a child process and checks how it fails. Asynchronous (with a
// kill timeout) so that a test file can run several CLI processes at once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/moets.js', import.meta.url));

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

/** `moets ...args`: exit status, stdout, stderr. A run past the timeout is killed (and fails the checks). */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...opts.env };
    if (opts.env?.['MOETS_DEVICE'] === undefined) delete env['MOETS_DEVICE'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/**
 * The CLI failed as a user error must: exit `status`, nothing on stdout, stderr exactly one line
 * `moets: …` without a stack trace, matching `message` (and, for the CLI's own messages, `…; what to do`).
 */
export function assertUserError(result: CliResult, status: number, message: RegExp, saysWhatToDo = true): void {
  const context = `exit ${result.status} (${result.signal ?? 'no signal'}), stderr:\n${result.stderr}`;
  assert.equal(result.signal, null, context);
  assert.equal(result.status, status, context);
  assert.equal(result.stdout, '', context);
  const lines = result.stderr.split('\n');
  assert.equal(lines.length, 2, `stderr should be one line: ${context}`);
  assert.equal(lines[1], '', context);
  assert.ok(lines[0]!.startsWith('moets: '), context);
  assert.ok(!result.stderr.includes('    at '), `stack trace in stderr: ${context}`);
  assert.ok(!lines[0]!.startsWith('moets: error'), `commander's own 'error:' prefix leaked: ${context}`);
  assert.match(lines[0]!, message);
  if (saysWhatToDo) assert.match(lines[0]!, /; \S/, `the message should say what to do after '; ': ${context}`);
}

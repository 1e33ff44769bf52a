// In process: commander's own parse errors become one-line usage errors that point at the command's --help, and
// reportError prints a user error as one `moets: …` line with exit 2 (usage) or 1 (other) while a bug keeps its
// stack trace. The real CLI end to end is covered by bad-flags.test.ts and bad-model.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MoetsError } from '../../src/core/errors.ts';
import { reportError } from '../../src/cli/errors.ts';
import { buildProgram } from '../../src/cli/program.ts';

async function parseError(...args: string[]): Promise<MoetsError> {
  try {
    await buildProgram().parseAsync(['node', 'moets', ...args]);
  } catch (e) {
    assert.ok(e instanceof MoetsError, `expected a MoetsError, got ${(e as Error).stack}`);
    return e;
  }
  return assert.fail(`moets ${args.join(' ')} parsed`);
}

test('commander parse errors are one-line usage errors naming the command to ask for help', async () => {
  const cases: [string[], string][] = [
    [['generat', '--prompt', 'hi'], "unknown command 'generat' (Did you mean generate?); run 'moets --help' to see the usage"],
    [['generate', '--ids', '1', '--format', 'xml'],
      "option '--format <format>' argument 'xml' is invalid. Allowed choices are text, ids; run 'moets generate --help' to see the usage"],
    [['logits', '--ids', '1,2'], "required option '--out <file>' not specified; run 'moets logits --help' to see the usage"],
    [['inspect', 'a', 'b'], "too many arguments for 'inspect'. Expected 1 argument but got 2; run 'moets inspect --help' to see the usage"],
    [['generate', '--ids'], "option '--ids <ids>' argument missing; run 'moets generate --help' to see the usage"],
  ];
  for (const [args, message] of cases) {
    const e = await parseError(...args);
    assert.equal(e.kind, 'usage');
    assert.equal(e.message, message);
  }
});

function report(error: unknown): { code: number; text: string } {
  let text = '';
  const code = reportError(error, (t) => { text += t; });
  return { code, text };
}

test('a usage error exits 2, any other user error 1, as one line', () => {
  assert.deepEqual(report(new MoetsError('usage', 'bad flag; fix it')), { code: 2, text: 'moets: bad flag; fix it\n' });
  assert.deepEqual(report(new MoetsError('format', 'bad file\n  at byte 8; replace it')),
    { code: 1, text: 'moets: bad file at byte 8; replace it\n' });
  assert.equal(report(new MoetsError('device', 'no GPU')).code, 1);
});

test('a bug prints its stack trace and exits 1', () => {
  const bug = new TypeError('x is undefined');
  const { code, text } = report(bug);
  assert.equal(code, 1);
  assert.ok(text.startsWith('moets: internal error'));
  assert.ok(text.includes(bug.stack!), text);
});

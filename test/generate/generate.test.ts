// The generation loop on a test-only bigram model computed on the CPU backend (bigram-model.ts): greedy output
// against an argmax chain computed independently in plain loops, seeded sampling against the same chain with
// the sampler, prefill-once-then-one-token cache use, stop conditions, streaming, and input validation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MoetsError, type ErrorKind } from '../../src/core/errors.ts';
import { generate, type GenerateOptions } from '../../src/generate/generate.ts';
import { SeededRandom, sampleToken, type SamplingOptions } from '../../src/generate/sampling.ts';
import { makeBigramModel, referenceLogits, type BigramModel } from './bigram-model.ts';

const V = 37;
const PROMPT = [3, 1, 4, 1, 5, 9, 2, 6];

/** The continuation a correct loop must produce: next token from the logits of the last token at its position. */
function referenceContinuation(model: BigramModel, prompt: number[], count: number, pick: (row: Float32Array) => number): number[] {
  const sequence = [...prompt];
  for (let n = 0; n < count; n++) {
    const position = sequence.length - 1;
    sequence.push(pick(referenceLogits(model, sequence[position]!, position)));
  }
  return sequence.slice(prompt.length);
}

function plainArgmax(row: Float32Array): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
  return best;
}

function isError(kind: ErrorKind) {
  return (e: unknown) => e instanceof MoetsError && e.kind === kind && !e.message.includes('\n');
}

test('greedy generation equals the argmax chain; the prompt is prefilled once, then one token per step', async () => {
  const model = makeBigramModel(V, 64);
  const result = await generate(model, PROMPT, { maxNewTokens: 20, temperature: 0 });
  assert.deepEqual(result.tokens, referenceContinuation(model, PROMPT, 20, plainArgmax));
  assert.equal(result.finishReason, 'length');
  assert.equal(new Set(result.tokens).size > 3, true, 'the chain is not stuck on one token');
  // Calls: the prompt at cache length 0, then each new token but the last, the cache growing by one each time.
  assert.deepEqual(model.calls[0], { ids: PROMPT, cacheLengthBefore: 0 });
  assert.equal(model.calls.length, 20);
  model.calls.slice(1).forEach((call, n) => {
    assert.deepEqual(call, { ids: [result.tokens[n]!], cacheLengthBefore: PROMPT.length + n });
  });
  assert.deepEqual(model.runs, new Array(20).fill(1), 'every step computes the last position only');
  assert.deepEqual(model.caches, [{ capacity: PROMPT.length + 19 }], 'the cache is allocated for prompt + budget - 1');
});

test('seeded sampling reproduces, and equals the sampler run over the reference logits', async () => {
  const model = makeBigramModel(V, 64);
  const sampling: SamplingOptions = { temperature: 0.9, topK: 12, topP: 0.9 };
  const opts: GenerateOptions = { maxNewTokens: 24, ...sampling, seed: 1234 };
  const first = await generate(model, PROMPT, opts);
  const second = await generate(model, PROMPT, opts);
  assert.deepEqual(first.tokens, second.tokens);
  assert.equal(first.seed, 1234);
  const rng = new SeededRandom(1234);
  assert.deepEqual(first.tokens, referenceContinuation(model, PROMPT, 24, (row) => sampleToken(row, sampling, rng)));
  const other = await generate(model, PROMPT, { ...opts, seed: 1235 });
  assert.notDeepEqual(other.tokens, first.tokens);
  assert.notDeepEqual(first.tokens, referenceContinuation(model, PROMPT, 24, plainArgmax), 'sampling is not greedy here');
});

test('without a seed a random one is drawn and reported; rerunning with it gives the same tokens', async () => {
  const model = makeBigramModel(V, 64);
  const opts: GenerateOptions = { maxNewTokens: 16, temperature: 1.5, topK: 0 };
  const first = await generate(model, PROMPT, opts);
  assert.ok(Number.isSafeInteger(first.seed));
  assert.deepEqual((await generate(model, PROMPT, { ...opts, seed: first.seed })).tokens, first.tokens);
});

test('a stop token ends generation and is the last returned id; the default stop ids are the model\'s EOS', async () => {
  const greedy = referenceContinuation(makeBigramModel(V, 64), PROMPT, 20, plainArgmax);
  const stopAt = greedy.findIndex((id, n) => n >= 3 && greedy.indexOf(id) === n); // a token first seen at step ≥ 3
  assert.ok(stopAt >= 3, 'the greedy chain has a token first produced at step ≥ 3');
  const stopId = greedy[stopAt]!;
  const expected = greedy.slice(0, stopAt + 1);

  const explicit = await generate(makeBigramModel(V, 64), PROMPT, { maxNewTokens: 20, temperature: 0, stopTokenIds: [stopId] });
  assert.deepEqual(explicit, { tokens: expected, finishReason: 'eos', seed: explicit.seed });
  const byModel = await generate(makeBigramModel(V, 64, [stopId]), PROMPT, { maxNewTokens: 20, temperature: 0 });
  assert.deepEqual(byModel.tokens, expected);
  assert.equal(byModel.finishReason, 'eos');
  const overridden = await generate(makeBigramModel(V, 64, [stopId]), PROMPT, { maxNewTokens: 20, temperature: 0, stopTokenIds: [] });
  assert.deepEqual(overridden.tokens, greedy);
});

test('maxNewTokens and the model\'s maxPositions bound the output', async () => {
  const model = makeBigramModel(V, 64);
  const five = await generate(model, PROMPT, { maxNewTokens: 5, temperature: 0 });
  assert.deepEqual(five.tokens, referenceContinuation(model, PROMPT, 5, plainArgmax));
  assert.equal(five.finishReason, 'length');

  const none = makeBigramModel(V, 64);
  assert.deepEqual((await generate(none, PROMPT, { maxNewTokens: 0 })).tokens, []);
  assert.equal(none.calls.length, 0, 'no forward for zero new tokens');

  const short = makeBigramModel(V, PROMPT.length + 3);
  const bounded = await generate(short, PROMPT, { maxNewTokens: 50, temperature: 0 });
  assert.deepEqual(bounded.tokens, referenceContinuation(short, PROMPT, 3, plainArgmax));
  assert.equal(bounded.finishReason, 'length');
  const full = await generate(makeBigramModel(V, PROMPT.length), PROMPT, { maxNewTokens: 5 });
  assert.deepEqual(full.tokens, []);
  await assert.rejects(generate(makeBigramModel(V, PROMPT.length - 1), PROMPT, { maxNewTokens: 5 }), isError('input'));
});

test('onToken sees every new id in order, and an async callback is awaited before the next step', async () => {
  const model = makeBigramModel(V, 64);
  const seen: number[] = [];
  const result = await generate(model, PROMPT, {
    maxNewTokens: 6,
    temperature: 0,
    onToken: async (id) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      assert.equal(model.calls.length, seen.length + 1, 'no forward runs while the callback is pending');
      seen.push(id);
    },
  });
  assert.deepEqual(seen, result.tokens);
});

test('bad options and prompts are one-line usage / input errors', async () => {
  const model = makeBigramModel(V, 64);
  const usage: Partial<GenerateOptions>[] = [
    { maxNewTokens: -1 }, { maxNewTokens: 1.5 }, { maxNewTokens: NaN }, { temperature: -1 }, { topP: 0 },
    { topP: 1.5 }, { topK: -2 },
  ];
  for (const bad of usage) {
    await assert.rejects(generate(model, PROMPT, { maxNewTokens: 4, ...bad }), isError('usage'), JSON.stringify(bad));
  }
  for (const prompt of [[], [1, V], [-1], [2, 1.5]]) {
    await assert.rejects(generate(model, prompt, { maxNewTokens: 4 }), isError('input'), JSON.stringify(prompt));
  }
  assert.equal(model.calls.length, 0, 'nothing ran for a bad request');
});

// The generation loop: prefill the prompt once, then decode one token at a time, reusing the model's KV
// cache, until a stop token, the token budget or the model's longest sequence. The cache is allocated for prompt +
// budget up front, and every step goes through a DecodeStepper, which replays the decode step as a captured graph
// (decode-step.ts).
//
// P = prompt tokens, V = vocabulary size.
import { randomInt } from 'node:crypto';
import { assert, fail } from '../core/errors.ts';
import type { CausalLM } from '../models/model.ts';
import { DecodeStepper } from './decode-step.ts';
import { SeededRandom, sampleToken, validateSamplingOptions, type SamplingOptions } from './sampling.ts';

export interface GenerateOptions {
  /** How many new tokens at most (an integer ≥ 0). */
  maxNewTokens: number;
  /** 0 = greedy. Default 1 (plain sampling). */
  temperature?: number;
  /** 0 = off. Default 50, as transformers' GenerationConfig. */
  topK?: number;
  /** In (0, 1]; 1 = off. Default 1. */
  topP?: number;
  /** Seed of the sampler; the same seed gives the same tokens. Default: a random one (reported in the result). */
  seed?: number;
  /** Ids that end generation. Default: model.eosTokenIds. */
  stopTokenIds?: readonly number[];
  /** Called with each new id as soon as it is chosen (the stop token too), in order; awaited if it returns a promise. */
  onToken?: (id: number) => void | Promise<void>;
}

export interface GenerateResult {
  /** The new ids. When finishReason is 'eos' the last one is the stop token (as transformers returns it). */
  tokens: number[];
  /** 'eos': a stop token was generated; 'length': maxNewTokens or the model's maxPositions was reached. */
  finishReason: 'eos' | 'length';
  /** The sampler's seed (the one given, or the random one drawn). */
  seed: number;
}

export async function generate(model: CausalLM, promptIds: readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
  const sampling: SamplingOptions = { temperature: opts.temperature ?? 1, topK: opts.topK ?? 50, topP: opts.topP ?? 1 };
  validateSamplingOptions(sampling);
  validateRequest(model, promptIds, opts.maxNewTokens);
  const seed = opts.seed ?? randomInt(2 ** 32);
  const rng = new SeededRandom(seed);
  const stopIds = new Set(opts.stopTokenIds ?? model.eosTokenIds);
  // The whole sequence (prompt + new tokens) must fit in the model's positions.
  const budget = Math.min(opts.maxNewTokens, model.maxPositions - promptIds.length);
  const tokens: number[] = [];
  if (budget === 0) return { tokens, finishReason: 'length', seed };

  // The last new token is never fed back, so the cache needs prompt + budget - 1 positions.
  const cache = model.newCache({ capacity: promptIds.length + budget - 1 });
  const stepper = new DecodeStepper(model, cache);
  try {
    let input = Int32Array.from(promptIds);
    for (;;) {
      const row = await stepper.step(input, 1); // logits: [1, V]
      assert(row.length === model.vocabSize, `logits of ${row.length} values, expected [1, ${model.vocabSize}]`);
      const id = sampleToken(row, sampling, rng);
      tokens.push(id);
      await opts.onToken?.(id);
      if (stopIds.has(id)) return { tokens, finishReason: 'eos', seed };
      if (tokens.length === budget) return { tokens, finishReason: 'length', seed };
      input = Int32Array.of(id);
    }
  } finally {
    stepper.dispose();
    cache.dispose();
  }
}

function validateRequest(model: CausalLM, promptIds: readonly number[], maxNewTokens: number): void {
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    fail('usage', `max-new-tokens must be an integer ≥ 0, got ${maxNewTokens}`);
  }
  if (promptIds.length === 0) fail('input', 'the prompt is empty: give at least one token');
  for (const id of promptIds) {
    if (!(Number.isInteger(id) && id >= 0 && id < model.vocabSize)) {
      fail('input', `prompt token id ${id} is outside the model's vocabulary [0, ${model.vocabSize}); use ids from this model's tokenizer`);
    }
  }
  if (promptIds.length > model.maxPositions) {
    fail('input', `the prompt has ${promptIds.length} tokens, more than the model's ${model.maxPositions} positions`);
  }
}

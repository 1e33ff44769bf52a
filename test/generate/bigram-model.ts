// A test-only CausalLM with a real (tiny) computation on the CPU backend, for testing the generation loop
// before and besides the real model families: the logits of the token at position p are
//   logits[p] = bigram[token at p] + positional[p]        (bigram: [V, V], positional: [P, V])
// so they depend on the previous token and on how many positions the cache holds. It records every step (at
// prepareStep, the host half every step runs, replayed or not), so a test can check that the prompt is prefilled
// once and each new token is fed alone. One sequence per cache.
//
// V = vocabulary size, P = max positions, T = tokens in one forward call.
import type { Backend } from '../../src/backend/backend.ts';
import { getBackend } from '../../src/backend/registry.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import {
  forwardStep, type CacheOptions, type CausalLM, type ForwardOptions, type ModelCache, type StepInputs, type StepValues,
} from '../../src/models/model.ts';

class PositionCache implements ModelCache {
  readonly batch = 1;
  readonly storageVersion = 0;
  length = 0;

  advance(tokens: number): void {
    this.length += tokens;
  }

  dispose(): void {}
}

export interface ForwardCall {
  ids: number[];
  cacheLengthBefore: number;
}

/** Deterministic pseudo-random floats in [-scale, scale) (an LCG, independent of the sampler's generator). */
export function tableValues(count: number, seed: number, scale: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * scale;
  });
}

export class BigramModel implements CausalLM {
  readonly backend: Backend = getBackend('cpu');
  readonly modelType = 'test-bigram';
  readonly routingObserver = undefined;
  readonly calls: ForwardCall[] = [];
  /** lastTokens of every runStep call. */
  readonly runs: (number | undefined)[] = [];
  /** The cache options each newCache call got. */
  readonly caches: CacheOptions[] = [];
  private readonly bigramTable: Tensor;
  private readonly positionalTable: Tensor;

  constructor(
    readonly vocabSize: number,
    readonly maxPositions: number,
    readonly eosTokenIds: readonly number[],
    /** bigram: [V, V] row-major, positional: [P, V]. */
    readonly bigram: Float32Array,
    readonly positional: Float32Array,
  ) {
    this.bigramTable = this.backend.upload(bigram, [vocabSize, vocabSize], 'f32');
    this.positionalTable = this.backend.upload(positional, [maxPositions, vocabSize], 'f32');
  }

  newCache(opts: CacheOptions = {}): ModelCache {
    if ((opts.batch ?? 1) !== 1) throw new Error('the bigram model keeps one sequence per cache');
    this.caches.push(opts);
    return new PositionCache();
  }

  forward(ids: Int32Array, cache: ModelCache, opts: ForwardOptions = {}): Promise<Tensor> {
    return forwardStep(this, ids, cache, opts);
  }

  prepareStep(ids: Int32Array, cache: ModelCache): StepValues {
    if (!(cache instanceof PositionCache)) throw new Error('not a cache of this model');
    const T = ids.length;
    this.calls.push({ ids: Array.from(ids), cacheLengthBefore: cache.length });
    const positions = Int32Array.from({ length: T }, (_, t) => cache.length + t);
    if (positions[T - 1]! >= this.maxPositions) throw new Error(`position ${positions[T - 1]} ≥ maxPositions`);
    return { batch: 1, tokens: T, ids, positions, rows: positions };
  }

  async runStep(inputs: StepInputs, _cache: ModelCache, opts: ForwardOptions = {}): Promise<Tensor> {
    const T = inputs.ids.size;
    this.runs.push(opts.lastTokens);
    const logits = this.backend.add( // [T, V]
      this.backend.embedding(this.bigramTable, inputs.ids),
      this.backend.embedding(this.positionalTable, inputs.positions.reshape([T])),
    );
    const last = opts.lastTokens ?? T;
    return this.backend.sliceRows(logits, T - last, last);
  }

  setRoutingObserver(): void {
    // No MoE layers.
  }
}

export function makeBigramModel(V: number, maxPositions: number, eosTokenIds: readonly number[] = []): BigramModel {
  return new BigramModel(V, maxPositions, eosTokenIds, tableValues(V * V, 17, 3), tableValues(maxPositions * V, 29, 1));
}

/** Reference: the logits row of `token` at `position`, in plain float32 arithmetic. */
export function referenceLogits(model: BigramModel, token: number, position: number): Float32Array {
  const V = model.vocabSize;
  return Float32Array.from({ length: V }, (_, j) => Math.fround(model.bigram[token * V + j]! + model.positional[position * V + j]!));
}

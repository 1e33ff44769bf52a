// What every causal language model in moets offers, whatever its family: a forward pass over new token ids
// that extends a KV cache, and the facts `inspect` and generation need.
//
// A step is split in two so that it can be captured as a CUDA graph and replayed (src/generate/decode-step.ts):
// prepareStep does the host work (checks the ids, makes room in the cache, computes the step's positions and
// cache rows), runStep queues the device work, reading everything that changes from step to step from device
// tensors (StepInputs). forward() is the two run back to back, with the inputs uploaded.
//
// B = sequences in the cache (stepped in lockstep), T = new tokens per sequence, V = vocabulary.
import type { Backend } from '../backend/backend.ts';
import type { Tensor } from '../core/tensor.ts';
import type { RoutingObserver } from '../moe/observer.ts';

export interface CacheOptions {
  /** Sequences stepped together: every step adds the same number of tokens to each. Default 1. */
  batch?: number;
  /**
   * Positions per sequence to allocate up front. Until they are used up the cache never moves in memory (what a
   * captured step needs); past them it grows. Default: none, grow as needed.
   */
  capacity?: number;
}

/** Per-batch state carried between forward calls: cached keys/values and how many positions they hold. */
export interface ModelCache {
  /** Positions already processed per sequence (the next token's position). */
  readonly length: number;
  /** Sequences in the cache. */
  readonly batch: number;
  /** Changes whenever the cache's storage moves (growth), so that steps captured against it are captured again. */
  readonly storageVersion: number;
  /** Records that a step of `tokens` new positions per sequence ran (after runStep). */
  advance(tokens: number): void;
  /** Gives the cached keys/values' memory back now rather than when the garbage collector finds them. */
  dispose(): void;
}

/** Host values of one step's inputs (see StepInputs); from prepareStep. */
export interface StepValues {
  batch: number;
  tokens: number;
  /** [B·T] new token ids, row-major (sequence b's tokens at [b·T, (b+1)·T)). */
  ids: Int32Array;
  /** [B·T] the absolute position of each. */
  positions: Int32Array;
  /** [B·T] the cache row each token's keys and values go to. */
  rows: Int32Array;
}

/** One step's inputs on the device, all i32: ids [B·T], positions [B, T], rows [B·T] (as in StepValues). */
export interface StepInputs {
  ids: Tensor;
  positions: Tensor;
  rows: Tensor;
}

export interface ForwardOptions {
  /** Compute logits only for the last `lastTokens` positions of each sequence (generation needs 1); default: all. */
  lastTokens?: number;
}

export interface CausalLM {
  readonly backend: Backend;
  readonly modelType: string;
  readonly vocabSize: number;
  /** Token ids that end generation (from config.json / generation_config.json). */
  readonly eosTokenIds: readonly number[];
  /** The longest sequence the model was made for (max_position_embeddings). */
  readonly maxPositions: number;
  /** The observer attached with setRoutingObserver, if any (a step that reports routing reads back to the host). */
  readonly routingObserver: RoutingObserver | undefined;
  newCache(opts?: CacheOptions): ModelCache;
  /** ids: B × T new tokens, row-major, continuing `cache` (which this call extends) → logits f32 [B·T', V]. */
  forward(ids: Int32Array, cache: ModelCache, opts?: ForwardOptions): Promise<Tensor>;
  /**
   * The host half of a step: checks `ids` (B × T, row-major), makes room in `cache` for T more positions per
   * sequence (growing its storage if it must) and returns the step's inputs. Does not advance the cache.
   */
  prepareStep(ids: Int32Array, cache: ModelCache): StepValues;
  /**
   * The device half: runs the step whose inputs are in `inputs`, writing this step's keys and values into `cache`
   * → logits f32 [B·T', V]. It queues device work only — no upload, no read back (except to hand routing to an
   * attached observer) — so it can be captured and replayed with new inputs. Does not advance the cache.
   */
  runStep(inputs: StepInputs, cache: ModelCache, opts?: ForwardOptions): Promise<Tensor>;
  /** Attach (or detach with undefined) an observer of every MoE layer's routing decisions. */
  setRoutingObserver(observer: RoutingObserver | undefined): void;
}

/** The inputs of a step uploaded as new tensors (the caller disposes them). */
export function uploadStepInputs(backend: Backend, v: StepValues): StepInputs {
  return {
    ids: backend.upload(v.ids, [v.batch * v.tokens], 'i32'),
    positions: backend.upload(v.positions, [v.batch, v.tokens], 'i32'),
    rows: backend.upload(v.rows, [v.batch * v.tokens], 'i32'),
  };
}

/** CausalLM.forward from its two halves: prepare, upload the inputs, run, advance the cache. */
export async function forwardStep(model: CausalLM, ids: Int32Array, cache: ModelCache, opts: ForwardOptions = {}): Promise<Tensor> {
  const values = model.prepareStep(ids, cache);
  const inputs = uploadStepInputs(model.backend, values);
  try {
    const logits = await model.runStep(inputs, cache, opts);
    cache.advance(values.tokens);
    return logits;
  } finally {
    // In stream order: the step's work was queued before anything can reuse this memory.
    for (const t of Object.values(inputs)) t.dispose();
  }
}

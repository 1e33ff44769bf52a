// Key/value cache of B sequences stepped in lockstep (every step adds the same number of positions to each): per
// layer, the keys and values of every position seen so far. Storage is allocated for `capacity` positions per
// sequence; sequence b's position p sits in row b·S + p (S = capacity). Given a capacity up front (generation
// knows prompt + budget) it never moves, so a captured step that writes and reads it stays valid; without one it
// grows by doubling (copyRows into larger tensors, O(log n) copies) and `storageVersion` counts the moves.
//
// keys: [B·S, ...keyRow], values: [B·S, ...valueRow]; standard attention caches keyRow [Hkv, Dh], valueRow
// [Hkv, Dv]; multi-head latent attention its latent [1, R] and shared RoPE key [1, Dr] (mla-attention.ts).
// B = sequences, S = capacity, T = new positions per sequence in a step.
import type { Backend } from '../backend/backend.ts';
import type { FloatDType } from '../core/dtype.ts';
import { assert, fail } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { CacheOptions, ModelCache, StepValues } from '../models/model.ts';

/** The shape of one cached position in one layer: the key row and the value row (without the position axis). */
export interface LayerCacheShape {
  keys: readonly number[];
  values: readonly number[];
}

/** The smallest storage a growing cache allocates, in positions per sequence. */
const MIN_CAPACITY = 16;

export class LayerKV {
  private keyStore: Tensor | undefined;
  private valueStore: Tensor | undefined;

  constructor(readonly shape: LayerCacheShape, readonly batch: number) {}

  /** keys [B·S, ...keyRow]; defined once the cache has storage (KVCache.reserve). */
  get keys(): Tensor {
    assert(this.keyStore !== undefined, 'KV cache used before reserve()');
    return this.keyStore;
  }

  get values(): Tensor {
    assert(this.valueStore !== undefined, 'KV cache used before reserve()');
    return this.valueStore;
  }

  /** Writes k [B·T, ...keyRow] and v [B·T, ...valueRow] at cache rows `rows` (i32 [B·T], b·S + position). */
  write(backend: Backend, k: Tensor, v: Tensor, rows: Tensor): void {
    const [keys, values] = [this.keys, this.values];
    const kIn = k.dtype === keys.dtype ? k : backend.cast(k, keys.dtype as FloatDType);
    const vIn = v.dtype === values.dtype ? v : backend.cast(v, values.dtype as FloatDType);
    backend.writeRows(keys, kIn, rows);
    backend.writeRows(values, vIn, rows);
    if (kIn !== k) kIn.dispose();
    if (vIn !== v) vIn.dispose();
  }

  /** keys [B, S, ...keyRow] and values [B, S, ...valueRow] (views), as attention takes them. */
  sequences(): { keys: Tensor; values: Tensor } {
    const B = this.batch;
    const S = this.keys.dim(0) / B;
    return { keys: this.keys.reshape([B, S, ...this.shape.keys]), values: this.values.reshape([B, S, ...this.shape.values]) };
  }

  /** New storage for `capacity` positions per sequence, keeping each sequence's first `used` rows. */
  resize(backend: Backend, dtype: FloatDType, capacity: number, used: number): void {
    this.keyStore = moved(backend, this.keyStore, [...this.shape.keys], this.batch, capacity, used, dtype);
    this.valueStore = moved(backend, this.valueStore, [...this.shape.values], this.batch, capacity, used, dtype);
  }

  dispose(): void {
    this.keyStore?.dispose();
    this.valueStore?.dispose();
    this.keyStore = this.valueStore = undefined;
  }
}

/** A zeroed [B·capacity, ...row] tensor holding the first `used` rows of each sequence of `old`. */
function moved(backend: Backend, old: Tensor | undefined, row: number[], B: number, capacity: number, used: number, dtype: FloatDType): Tensor {
  const next = backend.zeros([B * capacity, ...row], dtype);
  if (old && used > 0) {
    const oldCapacity = old.dim(0) / B;
    for (let b = 0; b < B; b++) {
      const kept = backend.sliceRows(old, b * oldCapacity, used);
      backend.copyRows(next, kept, b * capacity);
      kept.dispose();
    }
  }
  old?.dispose();
  return next;
}

export class KVCache implements ModelCache {
  readonly layers: LayerKV[];
  readonly batch: number;
  length = 0;
  /** Positions per sequence the storage holds (0 until the first reserve when no capacity was given). */
  capacity = 0;
  storageVersion = 0;

  constructor(private readonly backend: Backend, shapes: readonly LayerCacheShape[], private readonly dtype: FloatDType, opts: CacheOptions = {}) {
    const batch = opts.batch ?? 1;
    if (!(Number.isInteger(batch) && batch >= 1)) fail('usage', `the cache's batch must be an integer ≥ 1, got ${batch}`);
    if (opts.capacity !== undefined && !(Number.isInteger(opts.capacity) && opts.capacity >= 1)) {
      fail('usage', `the cache's capacity must be an integer ≥ 1, got ${opts.capacity}`);
    }
    this.batch = batch;
    this.layers = shapes.map((shape) => new LayerKV(shape, batch));
    if (opts.capacity !== undefined) this.resize(opts.capacity);
  }

  /** Makes room for `positions` per sequence, growing (by doubling at least) when the storage is smaller. */
  reserve(positions: number): void {
    if (positions <= this.capacity) return;
    this.resize(Math.max(positions, 2 * this.capacity, MIN_CAPACITY));
  }

  /**
   * The inputs of a step that adds `ids` (B × T, row-major) to every sequence: positions length + t and cache
   * rows b·S + length + t. Reserves the room first.
   */
  stepValues(ids: Int32Array): StepValues {
    const B = this.batch;
    const T = ids.length / B;
    assert(Number.isInteger(T) && T > 0, `${ids.length} ids for a cache of ${B} sequences`);
    this.reserve(this.length + T);
    const positions = new Int32Array(B * T);
    const rows = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        positions[b * T + t] = this.length + t;
        rows[b * T + t] = b * this.capacity + this.length + t;
      }
    }
    return { batch: B, tokens: T, ids, positions, rows };
  }

  advance(tokens: number): void {
    assert(this.length + tokens <= this.capacity, `cache advanced to ${this.length + tokens} of ${this.capacity} positions`);
    this.length += tokens;
  }

  /** Gives the storage back now (instead of when the garbage collector finds it). */
  dispose(): void {
    for (const layer of this.layers) layer.dispose();
    this.capacity = 0;
    this.length = 0;
    this.storageVersion++;
  }

  private resize(capacity: number): void {
    for (const layer of this.layers) layer.resize(this.backend, this.dtype, capacity, this.length);
    this.capacity = capacity;
    this.storageVersion++;
  }
}

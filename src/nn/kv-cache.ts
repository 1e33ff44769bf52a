// Key/value cache of one sequence: per layer, the keys and values of every position seen so far.
// Storage grows by doubling (copyRows into a larger tensor), so a long generation costs O(log n) copies.
//
// keys: [capacity, Hkv, Dh]; values: [capacity, Hkv, Dv].
import type { Backend } from '../backend/backend.ts';
import type { FloatDType } from '../core/dtype.ts';
import type { Tensor } from '../core/tensor.ts';
import type { ModelCache } from '../models/model.ts';

export class LayerKV {
  keys: Tensor | undefined;
  values: Tensor | undefined;

  /** Append k [T, Hkv, Dh] and v [T, Hkv, Dv] at row `at`, growing the storage when needed. */
  append(backend: Backend, k: Tensor, v: Tensor, at: number, dtype: FloatDType): void {
    const need = at + k.dim(0);
    if (!this.keys || !this.values || this.keys.dim(0) < need) {
      const capacity = Math.max(need, 2 * (this.keys?.dim(0) ?? 0), 16);
      this.keys = grow(backend, this.keys, [capacity, k.dim(1), k.dim(2)], at, dtype);
      this.values = grow(backend, this.values, [capacity, v.dim(1), v.dim(2)], at, dtype);
    }
    backend.copyRows(this.keys, k.dtype === dtype ? k : backend.cast(k, dtype), at);
    backend.copyRows(this.values, v.dtype === dtype ? v : backend.cast(v, dtype), at);
  }
}

function grow(backend: Backend, old: Tensor | undefined, shape: number[], used: number, dtype: FloatDType): Tensor {
  const next = backend.zeros(shape, dtype);
  if (old && used > 0) {
    const kept = backend.sliceRows(old, 0, used);
    backend.copyRows(next, kept, 0);
    kept.dispose();
  }
  old?.dispose();
  return next;
}

export class KVCache implements ModelCache {
  readonly layers: LayerKV[];
  length = 0;

  constructor(numLayers: number) {
    this.layers = Array.from({ length: numLayers }, () => new LayerKV());
  }
}

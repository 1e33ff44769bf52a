// CPU storage: a host typed array per tensor, plus helpers to view any float tensor as f32 values.
import type { Backend } from '../backend.ts';
import { DTYPE_BYTES, fromF32, isFloat, type DType, type FloatDType, type HostArray } from '../../core/dtype.ts';
import { assert, fail } from '../../core/errors.ts';
import { sizeOf, Tensor, type Shape, type Storage } from '../../core/tensor.ts';
import type { WeightRows } from './matmul.ts';
import { widen } from '../../core/widen.ts';

export class CpuStorage implements Storage {
  constructor(readonly data: HostArray) {}
  get byteLength(): number {
    return this.data.byteLength;
  }
}

export function hostData(t: Tensor): HostArray {
  assert(t.storage instanceof CpuStorage, `${t} is not a CPU tensor`);
  return t.storage.data;
}

/** The values of a float tensor as f32 (no copy when it is already f32). */
export function f32Of(t: Tensor): Float32Array {
  assert(isFloat(t.dtype), `${t} is not a float tensor`);
  return widen(hostData(t), t.dtype);
}

/** A float tensor's rows in their storage dtype, for matmulInto (which widens bf16/f16 a tile at a time). */
export function weightRowsOf(t: Tensor, offset = 0): WeightRows {
  assert(isFloat(t.dtype), `${t} is not a float tensor`);
  return { data: hostData(t), dtype: t.dtype, offset };
}

export function i32Of(t: Tensor): Int32Array {
  assert(t.dtype === 'i32', `${t} is not an index tensor`);
  return hostData(t) as Int32Array;
}

export function wrap(backend: Backend, data: HostArray, shape: Shape, dtype: DType): Tensor {
  assert(data.length === sizeOf(shape), `data of ${data.length} elements for shape [${shape.join(', ')}]`);
  return new Tensor(backend, new CpuStorage(data), shape, dtype);
}

/** A tensor of `dtype` from f32 results (narrowed to bf16/f16 when asked). */
export function fromValues(backend: Backend, values: Float32Array, shape: Shape, dtype: FloatDType): Tensor {
  return wrap(backend, fromF32(values, dtype), shape, dtype);
}

/** Decode little-endian bytes of `source` dtype into that dtype's host array (one copy, aligned). */
export function decodeBytes(bytes: Uint8Array, source: DType, count: number): HostArray {
  const need = count * DTYPE_BYTES[source];
  if (bytes.byteLength !== need) fail('format', `expected ${need} bytes for ${count} ${source} values, got ${bytes.byteLength}`);
  const copy = new Uint8Array(need);
  copy.set(bytes);
  if (source === 'f32') return new Float32Array(copy.buffer);
  if (source === 'i32') return new Int32Array(copy.buffer);
  return new Uint16Array(copy.buffer);
}

// Fast widening of bf16/f16 bit patterns to f32 (exact: every bf16/f16 value is an f32), for the CPU kernels and
// for values read back to the host from any backend.
// bf16 is the top half of an f32, so widening is a shift; f16 goes through a 65,536-entry table built once
// from dtype.ts's exact f16ToF32.
import { f16ToF32, type FloatDType, type HostArray } from './dtype.ts';

let f16Table: Float32Array | undefined;

function f16Values(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** dst[0, count) = f32 values of src[from, from + count) holding bf16 or f16 bits. */
export function widenInto(dst: Float32Array, src: Uint16Array, dtype: 'bf16' | 'f16', from: number, count: number): void {
  if (dtype === 'bf16') {
    const bits = new Uint32Array(dst.buffer, dst.byteOffset, count);
    for (let i = 0; i < count; i++) bits[i] = src[from + i]! << 16;
  } else {
    const table = f16Values();
    for (let i = 0; i < count; i++) dst[i] = table[src[from + i]!]!;
  }
}

/** The values of a float host array as f32: the array itself for f32, a widened copy for bf16/f16. */
export function widen(data: HostArray, dtype: FloatDType): Float32Array {
  if (dtype === 'f32') return data as Float32Array;
  const out = new Float32Array(data.length);
  widenInto(out, data as Uint16Array, dtype, 0, data.length);
  return out;
}

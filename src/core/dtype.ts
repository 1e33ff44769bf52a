// Element types a tensor can be stored in, their sizes, and exact conversions between float formats.
// bf16 and f16 are kept as raw 16-bit patterns (Uint16Array); the CPU backend computes in f32 (widening: widen.ts).

export type FloatDType = 'f32' | 'bf16' | 'f16';
export type DType = FloatDType | 'i32';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4 };

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype !== 'i32';
}

/** The host array that holds a dtype's elements: f32 → Float32Array, bf16/f16 → Uint16Array bits, i32 → Int32Array. */
export type HostArray = Float32Array | Uint16Array | Int32Array;

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → bf16 bits, round to nearest even (as torch does); NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** f16 bits → f32 (subnormals, infinities and NaN included). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** f32 → f16 bits, round to nearest even; overflow gives ±Infinity. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 31) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

/** Narrow f32 values to a float dtype's host array (rounding to nearest even). */
export function fromF32(values: Float32Array, dtype: FloatDType): HostArray {
  if (dtype === 'f32') return values;
  const out = new Uint16Array(values.length);
  const convert = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) out[i] = convert(values[i]!);
  return out;
}

/** The host array type that holds each dtype's values (bf16 and f16 as their 16-bit patterns). */
export const HOST_ARRAY_TYPE = { f32: Float32Array, bf16: Uint16Array, f16: Uint16Array, i32: Int32Array } as const;

export function allocHost(dtype: DType, length: number): HostArray {
  return new HOST_ARRAY_TYPE[dtype](length);
}

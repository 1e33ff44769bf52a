// Launch shapes of the per-row kernels that use pack.cuh (rms_norm, gather_rows, scatter_add_weighted): whether a
// row can be read in 16-byte packs, and how many threads each row gets.
// Legend: cols = row length in elements, N = elements per pack, units = packs per row (cols / N).
import { DTYPE_BYTES, type FloatDType } from '../../../core/dtype.ts';

/** Elements per 16-byte pack of `dtype` (pack.cuh's Packed<S>::N). */
export function packElements(dtype: FloatDType): number {
  return 16 / DTYPE_BYTES[dtype];
}

/** An array the kernel accesses in packs of N elements: its device address and element dtype. */
export interface PackedArray {
  address: number;
  dtype: FloatDType;
}

/**
 * True when rows of `cols` elements can be accessed in packs of N: cols a multiple of N and every array aligned to
 * its pack (min(16, N · element bytes), pack.cuh's alignment).
 */
export function fitsPacks(cols: number, N: number, arrays: readonly PackedArray[]): boolean {
  return cols % N === 0 && arrays.every((a) => a.address % Math.min(16, N * DTYPE_BYTES[a.dtype]) === 0);
}

/** Threads per row for `units` packs: the next power of two up to 32, then multiples of 32 up to `max`. */
export function threadsPerRow(units: number, max: number): number {
  if (units <= 32) return powerOfTwoAtLeast(units);
  return Math.min(max, Math.ceil(units / 32) * 32);
}

/** The smallest power of two ≥ n (1 for n ≤ 1). */
export function powerOfTwoAtLeast(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/** Blocks in a grid that walks its work in strides: at most `limit`, at least 1. */
export function gridOf(blocks: number, limit: number): number {
  return Math.max(1, Math.min(blocks, limit));
}

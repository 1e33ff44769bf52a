// CPU matrix products: dense `linear` (x · wᵀ) and the per-expert `groupedLinear`, both through matmulInto.
//
// x: [M, K] activations (f32); w: [N, K] weight rows (Hugging Face Linear layout, f32/bf16/f16); out: [M, N].
//
// Speed in plain JavaScript comes from register blocking: a 4×4 block of outputs keeps 16 independent
// accumulators, so each loaded x or w value is used four times (bench/NOTES.md has the measurements).
// The weight rows are walked in tiles of about 128 KB so a tile stays in L2 while every 4-row panel of x
// passes over it; bf16/f16 weights are widened one tile at a time into a scratch buffer.
//
// Every output is bias[n] + Σ_k x[m,k]·w[n,k], summed in k order in float64 (the products of two f32 are exact
// in float64), whichever path computes it. So results are bitwise deterministic and do not depend on M:
// a row computed alone (decode) equals the same row computed inside a batch (prefill).
import type { FloatDType, HostArray } from '../../core/dtype.ts';
import { widenInto } from '../../core/widen.ts';

/** Weight rows in their storage dtype; row n starts at element offset + n*K. */
export interface WeightRows {
  data: HostArray;
  dtype: FloatDType;
  offset: number;
}

/** Bytes of f32 weight rows per tile: small enough to stay in a 512 KB L2 next to the x panel. */
const TILE_BYTES = 128 * 1024;

/** out[m, n] = bias[n] + Σ_k x[m, k] * w[n, k], for rows m in [rowStart, rowEnd) of x and out. */
export function matmulInto(
  out: Float32Array, x: Float32Array, w: WeightRows,
  rowStart: number, rowEnd: number, N: number, K: number, bias?: Float32Array,
): void {
  if (rowEnd <= rowStart || N === 0) return;
  const b = bias ?? new Float32Array(N);
  const tileRows = Math.max(4, Math.floor(TILE_BYTES / 4 / Math.max(K, 1)) & ~3);
  const rows4End = rowStart + ((rowEnd - rowStart) & ~3);
  let scratch: Float32Array | undefined;
  for (let n0 = 0; n0 < N; n0 += tileRows) {
    const n1 = Math.min(N, n0 + tileRows);
    // Weight row n sits at tile[wBase + n*K], in the full f32 matrix or in the widened scratch tile alike.
    let tile: Float32Array;
    let wBase: number;
    if (w.dtype === 'f32') {
      tile = w.data as Float32Array;
      wBase = w.offset;
    } else {
      tile = scratch ??= new Float32Array(Math.min(tileRows, N) * K);
      widenInto(tile, w.data as Uint16Array, w.dtype, w.offset + n0 * K, (n1 - n0) * K);
      wBase = 0 - n0 * K; // not -n0 * K: that is -0 for the first tile, a double that slows every index
    }
    block4x4(out, x, tile, wBase, b, rowStart, rows4End, n0, n1, N, K);
    block1x8(out, x, tile, wBase, b, rows4End, rowEnd, n0, n1, N, K);
  }
}

/** Rows [m0, m1) (a multiple of 4 apart) × columns [n0, n1): 4×4 output blocks, then leftover columns one by one. */
function block4x4(
  out: Float32Array, x: Float32Array, w: Float32Array, wBase: number, bias: Float32Array,
  m0: number, m1: number, n0: number, n1: number, N: number, K: number,
): void {
  const n4End = n0 + ((n1 - n0) & ~3);
  for (let m = m0; m < m1; m += 4) {
    const x0 = m * K, x1 = x0 + K, x2 = x1 + K, x3 = x2 + K;
    for (let n = n0; n < n4End; n += 4) {
      const w0 = wBase + n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      const b0 = bias[n]!, b1 = bias[n + 1]!, b2 = bias[n + 2]!, b3 = bias[n + 3]!;
      let a00 = b0, a01 = b1, a02 = b2, a03 = b3, a10 = b0, a11 = b1, a12 = b2, a13 = b3;
      let a20 = b0, a21 = b1, a22 = b2, a23 = b3, a30 = b0, a31 = b1, a32 = b2, a33 = b3;
      for (let k = 0; k < K; k++) {
        const v0 = w[w0 + k]!, v1 = w[w1 + k]!, v2 = w[w2 + k]!, v3 = w[w3 + k]!;
        const u0 = x[x0 + k]!;
        a00 += u0 * v0; a01 += u0 * v1; a02 += u0 * v2; a03 += u0 * v3;
        const u1 = x[x1 + k]!;
        a10 += u1 * v0; a11 += u1 * v1; a12 += u1 * v2; a13 += u1 * v3;
        const u2 = x[x2 + k]!;
        a20 += u2 * v0; a21 += u2 * v1; a22 += u2 * v2; a23 += u2 * v3;
        const u3 = x[x3 + k]!;
        a30 += u3 * v0; a31 += u3 * v1; a32 += u3 * v2; a33 += u3 * v3;
      }
      let o = m * N + n;
      out[o] = a00; out[o + 1] = a01; out[o + 2] = a02; out[o + 3] = a03; o += N;
      out[o] = a10; out[o + 1] = a11; out[o + 2] = a12; out[o + 3] = a13; o += N;
      out[o] = a20; out[o + 1] = a21; out[o + 2] = a22; out[o + 3] = a23; o += N;
      out[o] = a30; out[o + 1] = a31; out[o + 2] = a32; out[o + 3] = a33;
    }
    for (let r = m; r < m + 4; r++) dotColumns(out, x, w, wBase, bias, r, n4End, n1, N, K);
  }
}

/** Rows [m0, m1) one at a time (decode, leftover rows) × columns [n0, n1): 8 columns per pass. */
function block1x8(
  out: Float32Array, x: Float32Array, w: Float32Array, wBase: number, bias: Float32Array,
  m0: number, m1: number, n0: number, n1: number, N: number, K: number,
): void {
  const n8End = n0 + ((n1 - n0) & ~7);
  for (let m = m0; m < m1; m++) {
    const xo = m * K;
    for (let n = n0; n < n8End; n += 8) {
      const w0 = wBase + n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      const w4 = w3 + K, w5 = w4 + K, w6 = w5 + K, w7 = w6 + K;
      let a0 = bias[n]!, a1 = bias[n + 1]!, a2 = bias[n + 2]!, a3 = bias[n + 3]!;
      let a4 = bias[n + 4]!, a5 = bias[n + 5]!, a6 = bias[n + 6]!, a7 = bias[n + 7]!;
      for (let k = 0; k < K; k++) {
        const u = x[xo + k]!;
        a0 += u * w[w0 + k]!; a1 += u * w[w1 + k]!; a2 += u * w[w2 + k]!; a3 += u * w[w3 + k]!;
        a4 += u * w[w4 + k]!; a5 += u * w[w5 + k]!; a6 += u * w[w6 + k]!; a7 += u * w[w7 + k]!;
      }
      const o = m * N + n;
      out[o] = a0; out[o + 1] = a1; out[o + 2] = a2; out[o + 3] = a3;
      out[o + 4] = a4; out[o + 5] = a5; out[o + 6] = a6; out[o + 7] = a7;
    }
    dotColumns(out, x, w, wBase, bias, m, n8End, n1, N, K);
  }
}

/** One row m × columns [n0, n1), a plain dot product each (the edges of the blocks above). */
function dotColumns(
  out: Float32Array, x: Float32Array, w: Float32Array, wBase: number, bias: Float32Array,
  m: number, n0: number, n1: number, N: number, K: number,
): void {
  const xo = m * K;
  for (let n = n0; n < n1; n++) {
    const wo = wBase + n * K;
    let acc = bias[n]!;
    for (let k = 0; k < K; k++) acc += x[xo + k]! * w[wo + k]!;
    out[m * N + n] = acc;
  }
}

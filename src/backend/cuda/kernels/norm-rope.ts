// Launchers for norm-rope.cu (the "launchers" half of that file): rmsNorm runs a group of threads per row (see
// rmsNormInto), softmax one block per row, siluMul (plain and clamped) and rope are grid-stride loops; each picks
// its kernel by dtype and queues it on the device's stream. Arguments are device addresses and counts.
// Legend: rows × cols = the row kernels' input, ffn = F (x is [R, 2F]), n = elements (or work units) written.
import type { FloatDType } from '../../../core/dtype.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, Kernel, KernelFile } from '../launch.ts';
import { fitsPacks, gridOf, packElements, threadsPerRow } from './row-layout.ts';

const SOURCE: KernelFile = { file: 'norm-rope.cu' };

/** Threads per block of softmax (a multiple of 32: its block reduction needs whole warps). */
const ROW_BLOCK = 256;
/** softmax blocks per multiprocessor the grid stops at (8 × 256 threads fill an SM); blocks stride over the rest. */
const ROW_BLOCKS_PER_SM = 8;

function launchRows(dev: CudaDevice, kernel: Kernel, rows: number, cols: number, values: readonly number[]): void {
  if (rows === 0 || cols === 0) return;
  dev.launch(kernel, Math.min(rows, dev.info.multiprocessors * ROW_BLOCKS_PER_SM), ROW_BLOCK, values);
}

/** Most threads an rms_norm row gets (the kernel's __launch_bounds__). */
const RMS_MAX_THREADS = 1024;
/** Threads per block when several short rows share a block (tpr ≤ 32). */
const RMS_SHORT_ROWS_BLOCK = 256;
/** Blocks per multiprocessor the rms_norm grid stops at; blocks stride over the remaining rows. */
const RMS_BLOCKS_PER_SM = 32;

/**
 * out [rows, cols] = rmsNorm of x [rows, cols] times w [cols] (w may have its own dtype). One thread per 16-byte pack
 * of a row (up to 1024 threads a row, more packs loop); rows of ≤ 32 packs (per-head q/k norms) share a block.
 */
export function rmsNormInto(
  dev: CudaDevice, dtype: FloatDType, wDtype: FloatDType, out: number, x: number, w: number, rows: number, cols: number, eps: number,
): void {
  if (rows === 0 || cols === 0) return;
  const kernel = dev.kernel(SOURCE, `rms_norm_${dtype}_${wDtype}`, ['ptr', 'ptr', 'ptr', 'u64', 'u64', 'f64', 'i32', 'i32']);
  const N = packElements(dtype);
  const packed = fitsPacks(cols, N, [{ address: out, dtype }, { address: x, dtype }, { address: w, dtype: wDtype }]);
  const tpr = threadsPerRow(packed ? cols / N : cols, RMS_MAX_THREADS);
  const block = tpr > 32 ? tpr : Math.min(RMS_SHORT_ROWS_BLOCK, Math.ceil((rows * tpr) / 32) * 32);
  const grid = gridOf(Math.ceil(rows / (block / tpr)), dev.info.multiprocessors * RMS_BLOCKS_PER_SM);
  dev.launch(kernel, grid, block, [out, x, w, rows, cols, eps, tpr, packed ? 1 : 0]);
}

/** out [rows, cols] = softmax of each row of x, in f32. */
export function softmaxInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, rows: number, cols: number): void {
  const kernel = dev.kernel(SOURCE, `softmax_${dtype}`, ['ptr', 'ptr', 'u64', 'u64']);
  launchRows(dev, kernel, rows, cols, [out, x, rows, cols]);
}

/** out [R, ffn] = silu(gate) * up of x [R, 2·ffn]; n = R · ffn. */
export function siluMulInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, ffn: number, n: number): void {
  dev.launchElementwise(dev.kernel(SOURCE, `silu_mul_${dtype}`, ['ptr', 'ptr', 'u64', 'u64']), n, [out, x, ffn, n]);
}

/** GPT-OSS's clamped SwiGLU: out [R, ffn] from x [R, 2·ffn]; n = R · ffn. */
export function clampedGluInto(
  dev: CudaDevice, dtype: FloatDType, out: number, x: number, alpha: number, limit: number, ffn: number, n: number,
): void {
  const kernel = dev.kernel(SOURCE, `clamped_glu_${dtype}`, ['ptr', 'ptr', 'f32', 'f32', 'u64', 'u64']);
  dev.launchElementwise(kernel, n, [out, x, alpha, limit, ffn, n]);
}

/** x [T, heads, headDim] as rope reads it; rotaryDim = 2 · half leading dims of each head rotate. */
export interface RopeLayout {
  tokens: number;
  heads: number;
  headDim: number;
  half: number;
  interleaved: boolean;
}

/** out = x rotated by position (positions: i32 [T], invFreq: f32 [half] device addresses). */
export function ropeInto(
  dev: CudaDevice, dtype: FloatDType, out: number, x: number, positions: number, invFreq: number, layout: RopeLayout, scaling: number,
): void {
  const { tokens, heads, headDim, half, interleaved } = layout;
  const args: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64', 'i32', 'f64', 'u64'];
  const n = tokens * heads * (headDim - half); // work units: one per rotating pair or passed-through element
  dev.launchElementwise(dev.kernel(SOURCE, `rope_${dtype}`, args), n, [out, x, positions, invFreq, heads, headDim, half, interleaved ? 1 : 0, scaling, n]);
}

// Launchers for the MoE experts' grouped GEMMs (grouped.cu, grouped-gemv-glu.cu, grouped-mma*.cu, grouped-wgmma*.cu):
// which kernel serves which size (groupedLinearPath), grid sizes, shared memory and argument lists, queued on the
// device's stream. One launch covers all experts; blocks find their expert from the offsets on the device.
//
// Legend: N = routed rows (sorted by expert), E = experts, Kin/Nout = GEMM sizes, F = expert FFN size.
import { DTYPE_BYTES, type FloatDType } from '../../../core/dtype.ts';
import { assert, fail } from '../../../core/errors.ts';
import type { ClampedGlu } from '../../backend.ts';
import type { CudaDevice } from '../device.ts';
import { DEFAULT_SHARED_BYTES, type ArgKind, type KernelFile } from '../launch.ts';
import { planGemv, type GemvPlan } from './gemv.ts';
import { clampedGluInto, siluMulInto } from './norm-rope.ts';

const GROUPED: KernelFile = { file: 'grouped.cu' };
const GROUPED_MMA: KernelFile = { file: 'grouped-mma.cu' };
const GROUPED_MMA_GLU: KernelFile = { file: 'grouped-mma-glu.cu' };
const GROUPED_WGMMA: KernelFile = { file: 'grouped-wgmma.cu', archSpecific: true };
const GROUPED_WGMMA_GLU: KernelFile = { file: 'grouped-wgmma-glu.cu', archSpecific: true };
const GROUPED_GEMV_GLU: KernelFile = { file: 'grouped-gemv-glu.cu' };

/** Must match grouped.cu. */
const GROUPED_TILE = 64;
const GROUPED_THREADS = 256;
/** grouped_gemv (grouped.cu) and its GLU (grouped-gemv-glu.cu): rows a pass, and blocks an SM (their __launch_bounds__). */
const GROUPED_GEMV_ROWS = 8;
const GROUPED_GEMV_BLOCKS_PER_SM = 2;
/**
 * Without tensor cores (f32, or rows not 16-byte aligned), groupedLinear takes the GEMV kernel when
 * N ≤ max(GEMV_MAX_ROWS, GEMV_ROWS_PER_EXPERT · E), else the CUDA-core 64×64 tiles. The GEMV reads a hit
 * expert's weights once per 8 of its rows at ~copy speed; the 64×64 tiles read them once per 64 rows but at CUDA-core
 * speed with ≥ 87 % of each tile's multiply-adds wasted when an expert has ≤ 8 rows. So the GEMV wins whenever experts
 * average ≤ 16 rows (two passes), and for any split of ≤ 256 rows (worst case one expert, 32 passes over its weights,
 * about the FLOPs of one 64×64-tile pass at a similar CUDA-core rate). Decode (T·K rows, T ≤ 64) always takes it.
 */
const GEMV_MAX_ROWS = 256;
const GEMV_ROWS_PER_EXPERT = 16;
/**
 * grouped-mma.cuh (tensor cores, bf16/f16, sm_80+): 128 threads a block, tiles of BM rows × 128 columns, each stage
 * of its shared-memory ring (BM + 128) rows of 128 bytes; `stages` must match the kernel lists of grouped-mma.cu
 * and grouped-mma-glu.cu. On tensor cores a tile's unused rows cost little next to reading the expert's weights
 * (the tile streams them once, through a deep copy pipeline), so it replaces the GEMV as soon as experts average
 * more than MMA_MIN_ROWS_PER_EXPERT rows (the GEMV is then partly bound by CUDA-core FMAs, and experts over 8 rows
 * cost it a second pass over the weights); it takes 128-row tiles once experts average MMA_TALL_ROWS_PER_EXPERT
 * rows (fewer ldmatrix per mma, fewer re-reads of the weights). Both cuts are first estimates: bench/grouped-gemm.ts
 * times the paths side by side.
 */
const MMA_TILES = { mma64: { rows: 64, stages: 4 }, mma128: { rows: 128, stages: 3 } } as const;
const MMA_THREADS = 128;
const MMA_COLUMNS = 128;
const MMA_ROW_BYTES = 128;
const MMA_MIN_ROWS_PER_EXPERT = 4;
const MMA_TALL_ROWS_PER_EXPERT = 128;
const MMA_MIN_COMPUTE_CAPABILITY = 80; // cp.async, ldmatrix, bf16 mma.sync
/**
 * grouped-wgmma.cuh (Hopper wgmma, built for sm_90a: runs on compute capability 9.0 only): 256 threads a block,
 * tiles of 128 rows × `columns` weight rows, each stage of the ring (128 + columns) rows of 128 bytes, plus
 * WGMMA_ALIGN bytes to align the ring; `stages` must match grouped-wgmma.cu and grouped-wgmma-glu.cu. On sm_90 it
 * replaces the mma.sync tiles once experts average WGMMA_MIN_ROWS_PER_EXPERT rows: on the H200
 * (bench/grouped-gemm.ts, 2 runs) wgmma256 ran the 4096- and 16384-token prefill GEMMs 1.4–1.6× faster than mma128
 * (≈ 520–565 TFLOP/s on the big shapes), and at 64 rows per expert (OLMoE, GPT-OSS at 512 tokens) ~15 % faster
 * than mma64's earlier timings; at 16–32 rows (DeepSeek, Qwen3 at 512 tokens) about even, so mma64 stays there.
 * wgmma128 (two blocks an SM) measured within a few % of wgmma256 either way: bench only.
 */
const WGMMA_TILES = { wgmma256: { columns: 256, stages: 4 }, wgmma128: { columns: 128, stages: 3 } } as const;
const WGMMA_AUTO: keyof typeof WGMMA_TILES = 'wgmma256';
const WGMMA_MIN_ROWS_PER_EXPERT = 64;
const WGMMA_THREADS = 256;
const WGMMA_ROWS = 128;
const WGMMA_ALIGN = 1024;
const WGMMA_COMPUTE_CAPABILITY = 90;
const GROUPED_ARGS: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'u64', 'u64', 'u64', 'i32'];
const MMA_ARGS: readonly ArgKind[] = [...GROUPED_ARGS, 'f32', 'f32'];

export interface GroupedLinearArgs {
  out: number; // [N, Nout]
  x: number; // [N, Kin]
  w: number; // [E, Nout, Kin], x's dtype
  bias: number; // f32 [E, Nout], or 0 for none
  offsets: number; // i32 [E + 1]
  N: number;
  E: number;
  Kin: number;
  Nout: number;
}

/**
 * The kernels groupedLinearInto can run: GEMV (few rows), CUDA-core 64×64 tiles, tensor-core tiles of 64 or 128 rows
 * (mma.sync), Hopper warpgroup tiles of 128 rows × 256 or 128 columns (wgmma).
 */
export type GroupedLinearPath = 'gemv' | 'tiled' | keyof typeof MMA_TILES | keyof typeof WGMMA_TILES;

/**
 * The kernel for these arguments. Tensor cores for bf16/f16 on sm_80+ when rows are 16-byte aligned (Kin % 8 == 0,
 * x and w 16-byte aligned), on sm_90 through wgmma once experts average 64 rows; otherwise (f32, odd Kin) the GEMV and
 * the CUDA-core tiles as before.
 */
export function groupedLinearPath(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs): GroupedLinearPath {
  const mma = dtype !== 'f32' && dev.info.computeCapability >= MMA_MIN_COMPUTE_CAPABILITY && a.Kin % 8 === 0 && a.x % 16 === 0 && a.w % 16 === 0;
  if (!mma) return a.N <= Math.max(GEMV_MAX_ROWS, GEMV_ROWS_PER_EXPERT * a.E) ? 'gemv' : 'tiled';
  if (a.N <= MMA_MIN_ROWS_PER_EXPERT * a.E) return 'gemv';
  const hopper = dev.info.computeCapability === WGMMA_COMPUTE_CAPABILITY;
  if (hopper && a.N >= WGMMA_MIN_ROWS_PER_EXPERT * a.E) return WGMMA_AUTO;
  return a.N >= MMA_TALL_ROWS_PER_EXPERT * a.E ? 'mma128' : 'mma64';
}

/**
 * All experts' GEMMs in one launch, by the kernel groupedLinearPath picks (`path` overrides it: benchmarks and
 * tests). Each kernel finds its experts from the offsets on the device (no host sync).
 */
export function groupedLinearInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, path = groupedLinearPath(dev, dtype, a)): void {
  if (a.N === 0 || a.Nout === 0) return;
  if (path === 'gemv') groupedGemvInto(dev, dtype, a);
  else if (path === 'tiled') groupedTilesInto(dev, dtype, a);
  else if (isWgmmaPath(path)) groupedWgmmaInto(dev, dtype, a, path, 'none');
  else groupedMmaInto(dev, dtype, a, path, 'none');
}

/** CUDA-core tiles (grouped_linear_<dtype>): blocks over (expert, row tile, column tile). */
function groupedTilesInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs): void {
  const colTiles = Math.ceil(a.Nout / GROUPED_TILE);
  const rowTiles = Math.ceil(a.N / GROUPED_TILE) + a.E;
  const grid = rowTiles * colTiles;
  if (grid >= 2 ** 31) fail('unsupported', `groupedLinear on cuda: ${a.N} rows × ${a.Nout} outputs over ${a.E} experts is too large for one grid`);
  const kernel = dev.kernel(GROUPED, `grouped_linear_${dtype}`, GROUPED_ARGS);
  dev.launch(kernel, grid, GROUPED_THREADS, [a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, colTiles]);
}

/**
 * groupedLinear(x, gateUp) then siluMul in one launch (grouped_mma_<silu|clamped>_<dtype>_<rows>): out [N, F] =
 * silu(gate) · up (or GPT-OSS's `clamped` form) from a.w = gateUp [E, 2F, Kin] (F gate rows, then F up rows; a.Nout
 * = 2F) and a.bias f32 [E, 2F] or 0. Only where groupedLinear takes the tensor cores (`path` mma64, mma128 or a
 * wgmma path, as groupedLinearPath picks); returns false without queuing anything otherwise, and the caller runs the
 * two ops. The gate and up sums enter the activation in f32 (the two ops round them to the dtype first), then round
 * once.
 */
export function groupedSwiGluInto(
  dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, clamped?: ClampedGlu, path = groupedLinearPath(dev, dtype, a),
): boolean {
  if (path === 'gemv' || path === 'tiled') return false;
  assert(a.Nout % 2 === 0, `groupedSwiGlu: gate|up weights need an even row count, got ${a.Nout}`);
  if (a.N === 0 || a.Nout === 0) return true;
  if (isWgmmaPath(path)) groupedWgmmaInto(dev, dtype, a, path, clamped ?? 'silu');
  else groupedMmaInto(dev, dtype, a, path, clamped ?? 'silu');
  return true;
}

/**
 * groupedGluLinear: out [N, F] = the GLU (silu(gate) · up, or `clamped`) of groupedLinear(x, gateUp) with a.w =
 * gateUp [E, 2F, Kin], a.Nout = 2F. Fused where groupedLinear would take the tensor cores (groupedSwiGluInto) or the
 * GEMV (grouped_gemv_<silu|clamped>_<dtype>): every decode step, and f32 or unaligned rows while N is small. Else
 * (the CUDA-core tiles) the two ops through a scratch [N, 2F] of the allocator.
 */
export function groupedGluLinearInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, clamped?: ClampedGlu): void {
  assert(a.Nout % 2 === 0, `groupedGluLinear: gate|up weights need an even row count, got ${a.Nout}`);
  if (a.N === 0 || a.Nout === 0) return;
  const path = groupedLinearPath(dev, dtype, a);
  if (groupedSwiGluInto(dev, dtype, a, clamped, path)) return;
  if (path === 'gemv') {
    groupedGemvGluInto(dev, dtype, a, clamped);
    return;
  }
  const F = a.Nout / 2;
  const projected = dev.alloc(a.N * a.Nout * DTYPE_BYTES[dtype]); // [N, 2F]
  try {
    groupedLinearInto(dev, dtype, { ...a, out: projected.pointer }, path);
    if (clamped) clampedGluInto(dev, dtype, a.out, projected.pointer, clamped.alpha, clamped.limit, F, a.N * F);
    else siluMulInto(dev, dtype, a.out, projected.pointer, F, a.N * F);
  } finally {
    dev.allocator.release(projected);
  }
}

/**
 * The GEMV with the GLU fused (grouped_gemv_<silu|clamped>_<dtype>_8x<WC>, grouped-gemv-glu.cu): groupedGemvInto's
 * plan over the 2F gate|up rows, each unit of WC rows being WC / 2 gate rows and the up rows of the same columns (so
 * WC ≥ 2: planGemv never gives 8-row passes a single column).
 */
function groupedGemvGluInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, clamped?: ClampedGlu): void {
  const { plan, sharedBytes } = groupedGemvPlan(dev, dtype, a, 'groupedGluLinear');
  assert(plan.columns % 2 === 0, `groupedGluLinear: a GEMV unit of ${plan.columns} weight rows cannot pair gate and up rows`);
  const kernel = dev.kernel(GROUPED_GEMV_GLU, `grouped_gemv_${clamped ? 'clamped' : 'silu'}_${dtype}_${GROUPED_GEMV_ROWS}x${plan.columns}`, MMA_ARGS);
  const [alpha, limit] = clamped ? [clamped.alpha, clamped.limit] : [0, 0];
  dev.launch(kernel, plan.grid, plan.blockWarps * 32, [
    a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, plan.teamWarps, alpha, limit,
  ], sharedBytes);
}

/**
 * The grouped GEMVs' plan (planGemv for min(E, N) hit experts of a.Nout weight rows, passes of 8 rows) and the
 * dynamic shared memory of their list of hit experts (3 ints an expert).
 */
export function groupedGemvPlan(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, op: string, tuning: Partial<GemvPlan> = {}) {
  if (a.N >= 2 ** 31) fail('unsupported', `${op} on cuda supports fewer than 2^31 rows; got ${a.N}`);
  const hits = Math.max(1, Math.min(a.E, a.N));
  const sharedBytes = 3 * 4 * hits;
  if (sharedBytes > DEFAULT_SHARED_BYTES) fail('unsupported', `${op} on cuda: the GEMV lists up to ${DEFAULT_SHARED_BYTES / 12} hit experts; got ${hits}`);
  const elements = 16 / DTYPE_BYTES[dtype];
  const vector = a.Kin % elements === 0 && a.x % 16 === 0 && a.w % 16 === 0 ? elements : 1;
  const plan = planGemv(dev.info.multiprocessors, {
    matrices: hits, Nout: a.Nout, Kin: a.Kin, vector, rows: GROUPED_GEMV_ROWS, blocksPerSM: () => GROUPED_GEMV_BLOCKS_PER_SM,
  }, tuning);
  return { plan, sharedBytes };
}

/**
 * Tensor-core tiles (grouped_mma_<dtype>_<rows>, or a GLU of them): row tiles start at each expert's first row, so
 * the experts need at most floor(N / rows) + min(E, N) of them; blocks past the last real tile return at once.
 */
function groupedMmaInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, path: keyof typeof MMA_TILES, glu: 'none' | 'silu' | ClampedGlu): void {
  const { rows, stages } = MMA_TILES[path];
  assert(dtype !== 'f32' && a.Kin % 8 === 0 && a.x % 16 === 0 && a.w % 16 === 0, `groupedLinear ${path} needs bf16/f16 rows of 16-byte multiples`);
  const name = glu === 'none' ? dtype : `${glu === 'silu' ? 'silu' : 'clamped'}_${dtype}`;
  const [outWidth, tileColumns] = glu === 'none' ? [a.Nout, MMA_COLUMNS] : [a.Nout / 2, MMA_COLUMNS / 2];
  const colTiles = Math.ceil(outWidth / tileColumns);
  const grid = (Math.floor(a.N / rows) + Math.min(a.E, a.N)) * colTiles;
  if (grid >= 2 ** 31) fail('unsupported', `groupedLinear on cuda: ${a.N} rows × ${a.Nout} outputs over ${a.E} experts is too large for one grid`);
  const sharedBytes = stages * (rows + MMA_COLUMNS) * MMA_ROW_BYTES;
  const kernel = dev.withSharedMemory(dev.kernel(glu === 'none' ? GROUPED_MMA : GROUPED_MMA_GLU, `grouped_mma_${name}_${rows}`, MMA_ARGS), sharedBytes);
  const [alpha, limit] = typeof glu === 'object' ? [glu.alpha, glu.limit] : [0, 0];
  dev.launch(kernel, grid, MMA_THREADS, [a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, colTiles, alpha, limit], sharedBytes);
}

function isWgmmaPath(path: GroupedLinearPath): path is keyof typeof WGMMA_TILES {
  return path in WGMMA_TILES;
}

/**
 * Hopper warpgroup tiles (grouped_wgmma_<dtype>_<columns>, or a GLU of them, sm_90a): the grid of groupedMmaInto for
 * 128-row tiles, 256 threads a block; a GLU tile makes columns / 2 outputs.
 */
function groupedWgmmaInto(
  dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, path: keyof typeof WGMMA_TILES, glu: 'none' | 'silu' | ClampedGlu,
): void {
  const { columns, stages } = WGMMA_TILES[path];
  assert(dev.info.computeCapability === WGMMA_COMPUTE_CAPABILITY, `groupedLinear ${path} runs on sm_${WGMMA_COMPUTE_CAPABILITY} only`);
  assert(dtype !== 'f32' && a.Kin % 8 === 0 && a.x % 16 === 0 && a.w % 16 === 0, `groupedLinear ${path} needs bf16/f16 rows of 16-byte multiples`);
  const name = glu === 'none' ? dtype : `${glu === 'silu' ? 'silu' : 'clamped'}_${dtype}`;
  const [outWidth, tileColumns] = glu === 'none' ? [a.Nout, columns] : [a.Nout / 2, columns / 2];
  const colTiles = Math.ceil(outWidth / tileColumns);
  const grid = (Math.floor(a.N / WGMMA_ROWS) + Math.min(a.E, a.N)) * colTiles;
  if (grid >= 2 ** 31) fail('unsupported', `groupedLinear on cuda: ${a.N} rows × ${a.Nout} outputs over ${a.E} experts is too large for one grid`);
  const sharedBytes = stages * (WGMMA_ROWS + columns) * MMA_ROW_BYTES + WGMMA_ALIGN;
  const file = glu === 'none' ? GROUPED_WGMMA : GROUPED_WGMMA_GLU;
  const kernel = dev.withSharedMemory(dev.kernel(file, `grouped_wgmma_${name}_${columns}`, MMA_ARGS), sharedBytes);
  const [alpha, limit] = typeof glu === 'object' ? [glu.alpha, glu.limit] : [0, 0];
  dev.launch(kernel, grid, WGMMA_THREADS, [a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, colTiles, alpha, limit], sharedBytes);
}

/**
 * The small-N path of groupedLinearInto (grouped_gemv_<dtype>_8x<WC>, same arguments but the team size S last):
 * passes of 8 rows, planned by groupedGemvPlan (`tuning` overrides it: benchmarks).
 */
export function groupedGemvInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, tuning: Partial<GemvPlan> = {}): void {
  const { plan, sharedBytes } = groupedGemvPlan(dev, dtype, a, 'groupedLinear', tuning);
  const kernel = dev.kernel(GROUPED, `grouped_gemv_${dtype}_${GROUPED_GEMV_ROWS}x${plan.columns}`, GROUPED_ARGS);
  dev.launch(kernel, plan.grid, plan.blockWarps * 32, [a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, plan.teamWarps], sharedBytes);
}

// Launchers for the MoE stage kernels (route.cu, dispatch.cu, grouped.cu, grouped-mma*.cu): grid sizes, shared
// memory and argument lists, queued on the device's stream. Arguments are device addresses; scratch memory comes
// from the allocator and goes back to it once queued (the one stream orders its reuse).
//
// Legend: T = tokens, E = experts, K = top-k, N = routed slots/rows (T*K), D = row length, Kin/Nout = GEMM sizes.
import { DTYPE_BYTES, type FloatDType } from '../../../core/dtype.ts';
import { assert, fail } from '../../../core/errors.ts';
import type { ClampedGlu, RouterSpec } from '../../backend.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, Kernel, KernelFile } from '../launch.ts';
import { planGemv, type GemvPlan } from './gemv.ts';
import { fitsPacks, packElements, powerOfTwoAtLeast } from './row-layout.ts';
import { clampedGluInto, siluMulInto } from './norm-rope.ts';

const ROUTE: KernelFile = { file: 'route.cu' };
const DISPATCH: KernelFile = { file: 'dispatch.cu' };
const GROUPED: KernelFile = { file: 'grouped.cu' };
const GROUPED_MMA: KernelFile = { file: 'grouped-mma.cu' };
const GROUPED_MMA_GLU: KernelFile = { file: 'grouped-mma-glu.cu' };
const GROUPED_WGMMA: KernelFile = { file: 'grouped-wgmma.cu', archSpecific: true };
const GROUPED_WGMMA_GLU: KernelFile = { file: 'grouped-wgmma-glu.cu', archSpecific: true };
const GROUPED_GEMV_GLU: KernelFile = { file: 'grouped-gemv-glu.cu' };

/** Shared memory a block may take without opting in (cuFuncSetAttribute). */
const STATIC_SHARED_LIMIT = 48 * 1024;
/** Must match route.cu (warp_top_k keeps chosen ids in lanes; route_small_<dtype>_<V> holds E ≤ 32·V). */
const MAX_ROUTE_TOPK = 32;
const ROUTE_SMALL_VALUES = [1, 2, 4, 8] as const;
/** Must match dispatch.cu (SORT_CHUNK; SCATTER_THREADS, SCATTER_PAIRS: a block's tokens × K pairs). */
const SORT_CHUNK = 2048;
const SCATTER_THREADS = 128;
const SCATTER_PAIRS = 1024;
const MAX_SCATTER_TOPK = 64;
/**
 * sort_small (one launch, one block) for N ≤ SORT_SMALL_SLOTS and E ≤ SORT_SMALL_EXPERTS: its one warp walks the
 * slots 32 at a time, so past ~1k slots the three-launch sort (a warp per 2048-slot chunk) is faster.
 */
const SORT_SMALL_SLOTS = 1024;
const SORT_SMALL_EXPERTS = 4096;
const SORT_SMALL_THREADS = 512;
/**
 * scatter_add_weighted finds each token's sorted rows by scanning all N slots when N ≤ SCATTER_SCAN_SLOTS (every
 * block reads the N slots from L2: one launch instead of a fill, invert_slots and the sum); beyond, it reads them from
 * invert_slots' output.
 */
const SCATTER_SCAN_SLOTS = 1024;
/** gather_rows: threads a block, and most threads a row gets (its packs split over more blocks past that). */
const GATHER_THREADS = 128;
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
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
const CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9;
const GROUPED_ARGS: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'u64', 'u64', 'u64', 'i32'];
const MMA_ARGS: readonly ArgKind[] = [...GROUPED_ARGS, 'f32', 'f32'];

const SCORING = { 'softmax-topk': 0, 'topk-softmax': 1, sigmoid: 2 } as const;

export interface RouteArgs {
  weights: number; // f32 [T, K]
  experts: number; // i32 [T, K]
  logits: number; // [T, E] of `dtype`
  bias: number; // f32 [E], or 0 for none
  T: number;
  E: number;
}

/**
 * Every router variant in one launch, one warp per token, 4 warps a block (fewer when E is large): for E ≤ 256 the
 * token's values stay in registers (route_small_<dtype>_<V>, V values a lane), else the general kernel keeps them
 * in shared memory.
 */
export function routeInto(dev: CudaDevice, dtype: FloatDType, a: RouteArgs, spec: RouterSpec): void {
  const K = spec.topK;
  if (!(K >= 1 && K <= a.E && K <= MAX_ROUTE_TOPK)) fail('unsupported', `route on cuda takes 1 ≤ topK ≤ min(experts, ${MAX_ROUTE_TOPK}); got topK ${K} of ${a.E} experts`);
  const G = spec.groups?.count ?? 0;
  const keep = spec.groups?.keep ?? 0;
  if (G > 0 && !(a.E % G === 0 && a.E / G >= 2 && keep >= 1 && keep <= G)) {
    fail('usage', `route: ${a.E} experts cannot form ${G} groups keeping ${keep}; experts must split into groups of 2 or more`);
  }
  const V = ROUTE_SMALL_VALUES.find((v) => 32 * v >= a.E);
  const grouped = G > 0 && spec.scoring !== 'topk-softmax';
  // Shared floats per warp: route_small score[E], picked[32] (+ choice[E], group scores and marks); the general
  // kernel score, choice, taken [E] each, group scores and marks, picked[32].
  const perWarpBytes = 4 * (V ? a.E + 32 + (grouped ? a.E + 2 * G : 0) : 3 * a.E + 2 * G + 32);
  const warps = Math.min(4, Math.floor(STATIC_SHARED_LIMIT / perWarpBytes));
  if (warps < 1) fail('unsupported', `route on cuda supports up to ${Math.floor((STATIC_SHARED_LIMIT - 128) / 12)} experts; got ${a.E}`);
  if (a.T === 0) return;
  const name = V ? `route_small_${dtype}_${V}` : `route_${dtype}`;
  const kernel = dev.kernel(ROUTE, name, ['ptr', 'ptr', 'ptr', 'ptr', 'u64', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f64']);
  const grid = Math.min(Math.ceil(a.T / warps), 2 ** 31 - 1);
  dev.launch(kernel, grid, warps * 32, [
    a.weights, a.experts, a.logits, a.bias, a.T, a.E, K, SCORING[spec.scoring], G, keep, spec.normalize ? 1 : 0, spec.scale ?? 1,
  ], warps * perWarpBytes);
}

/**
 * Stable counting sort of N expert ids into slots i32 [N] and offsets i32 [E + 1]: one launch for few slots
 * (sort_small: decode), three for many.
 */
export function sortByExpertInto(dev: CudaDevice, slots: number, offsets: number, experts: number, N: number, E: number): void {
  if (E * 4 > STATIC_SHARED_LIMIT) fail('unsupported', `sortByExpert on cuda supports up to ${STATIC_SHARED_LIMIT / 4} experts; got ${E}`);
  if (N >= 2 ** 31) fail('unsupported', `sortByExpert on cuda supports fewer than 2^31 slots; got ${N}`);
  if (N <= SORT_SMALL_SLOTS && E <= SORT_SMALL_EXPERTS) {
    const kernel = dev.kernel(DISPATCH, 'sort_small', ['ptr', 'ptr', 'ptr', 'i32', 'i32']);
    dev.launch(kernel, 1, SORT_SMALL_THREADS, [slots, offsets, experts, N, E], (N + E) * 4);
    return;
  }
  const chunks = Math.max(1, Math.ceil(N / SORT_CHUNK));
  const counts = dev.alloc(chunks * E * 4); // i32 [C, E]
  try {
    dev.launch(dev.kernel(DISPATCH, 'sort_count', ['ptr', 'ptr', 'u64', 'i32']), chunks, 256, [counts.pointer, experts, N, E], E * 4);
    dev.launch(dev.kernel(DISPATCH, 'sort_offsets', ['ptr', 'ptr', 'i32', 'i32']), 1, 1024, [offsets, counts.pointer, chunks, E], E * 4);
    if (N > 0) {
      dev.launch(dev.kernel(DISPATCH, 'sort_scatter', ['ptr', 'ptr', 'ptr', 'u64', 'i32']), chunks, 32, [slots, experts, counts.pointer, N, E], E * 4);
    }
  } finally {
    dev.allocator.release(counts);
  }
}

/**
 * pack.cuh's row tiling for rows of D elements: 16-byte packs where the arrays allow, tpr threads a row (a power of
 * two, at least minThreads, at most blockThreads), blockThreads / tpr rows a block, a row's packs split into `chunks`
 * blocks.
 */
function rowTiling(dtype: FloatDType, D: number, arrays: readonly number[], blockThreads: number, minThreads = 1) {
  const V = packElements(dtype);
  const packed = fitsPacks(D, V, arrays.map((address) => ({ address, dtype })));
  const units = packed ? D / V : D;
  const tpr = Math.min(blockThreads, Math.max(minThreads, powerOfTwoAtLeast(units)));
  return { packed, tpr, rowsPerBlock: blockThreads / tpr, chunks: Math.ceil(units / tpr) };
}

/** Largest grid the row-tiled kernels take: a multiple of `chunks` (they stride over more rows). */
function rowTiledGrid(rowBlocks: number, chunks: number): number {
  return Math.max(1, Math.min(rowBlocks, Math.floor((2 ** 31 - 1) / chunks))) * chunks;
}

/** out [N, D] row n = x [T, D] row slots[n] / K; 16-byte copies where rows are aligned, a row over several blocks. */
export function gatherRowsInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, slots: number, K: number, N: number, D: number): void {
  if (N === 0 || D === 0) return;
  const t = rowTiling(dtype, D, [out, x], GATHER_THREADS);
  const kernel = dev.kernel(DISPATCH, `gather_rows_${dtype}`, ['ptr', 'ptr', 'ptr', 'i32', 'u64', 'u64', 'i32', 'i32', 'i32']);
  dev.launch(kernel, rowTiledGrid(Math.ceil(N / t.rowsPerBlock), t.chunks), GATHER_THREADS, [out, x, slots, K, N, D, t.tpr, t.chunks, t.packed ? 1 : 0]);
}

/**
 * out [T, D] = Σ weights.flat[s] · y[n] over sorted rows n with slot s = slots[n] of token t, each token's K rows
 * summed in sorted order (deterministic, no atomics). For N ≤ SCATTER_SCAN_SLOTS one launch (each block finds its
 * tokens' rows in slots); beyond, the slots are first inverted into each slot's sorted row (a fill and invert_slots).
 */
export function scatterAddWeightedInto(
  dev: CudaDevice, dtype: FloatDType, out: number, y: number, slots: number, weights: number, N: number, T: number, K: number, D: number,
): void {
  if (K > MAX_SCATTER_TOPK) fail('unsupported', `scatterAddWeighted on cuda supports up to ${MAX_SCATTER_TOPK} experts per token; got ${K}`);
  if (T * K >= 2 ** 31) fail('unsupported', `scatterAddWeighted on cuda supports fewer than 2^31 slots; got ${T * K}`);
  if (T === 0 || D === 0) return;
  // A block holds (its rows) · K (row, weight) pairs: give a row more threads (fewer rows a block) when K is large.
  const t = rowTiling(dtype, D, [out, y], SCATTER_THREADS, powerOfTwoAtLeast((SCATTER_THREADS * K) / SCATTER_PAIRS));
  const grid = rowTiledGrid(Math.ceil(T / t.rowsPerBlock), t.chunks);
  const kernel = dev.kernel(DISPATCH, `scatter_add_weighted_${dtype}`, ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'u64', 'u64', 'u64', 'i32', 'i32', 'i32']);
  const run = (position: number) => dev.launch(kernel, grid, SCATTER_THREADS, [out, y, slots, position, weights, K, T, D, N, t.tpr, t.chunks, t.packed ? 1 : 0]);
  if (N <= SCATTER_SCAN_SLOTS) return run(0);
  const position = dev.alloc(T * K * 4); // i32 [T*K]: each slot's sorted row, -1 for none
  try {
    dev.driver.fillBytes(position.pointer, 0xff, T * K * 4, dev.stream);
    dev.launchElementwise(dev.kernel(DISPATCH, 'invert_slots', ['ptr', 'ptr', 'u64', 'u64']), N, [position.pointer, slots, N, T * K]);
    run(position.pointer);
  } finally {
    dev.allocator.release(position);
  }
}

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
  if (sharedBytes > STATIC_SHARED_LIMIT) fail('unsupported', `${op} on cuda: the GEMV lists up to ${STATIC_SHARED_LIMIT / 12} hit experts; got ${hits}`);
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
  const kernel = withSharedMemory(dev, dev.kernel(glu === 'none' ? GROUPED_MMA : GROUPED_MMA_GLU, `grouped_mma_${name}_${rows}`, MMA_ARGS), sharedBytes);
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
  const kernel = withSharedMemory(dev, dev.kernel(file, `grouped_wgmma_${name}_${columns}`, MMA_ARGS), sharedBytes);
  const [alpha, limit] = typeof glu === 'object' ? [glu.alpha, glu.limit] : [0, 0];
  dev.launch(kernel, grid, WGMMA_THREADS, [a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, colTiles, alpha, limit], sharedBytes);
}

/** Kernels whose dynamic shared-memory limit has been raised (once per loaded kernel), and to what. */
const sharedLimits = new WeakMap<Kernel, number>();

/** Raises `kernel`'s dynamic shared-memory limit to `bytes` (past the 48 KiB default) and asks for the largest carveout. */
function withSharedMemory(dev: CudaDevice, kernel: Kernel, bytes: number): Kernel {
  if (bytes <= STATIC_SHARED_LIMIT || (sharedLimits.get(kernel) ?? 0) >= bytes) return kernel;
  if (bytes > dev.info.maxSharedMemoryPerBlock) {
    fail('unsupported', `${kernel.name} needs ${bytes} bytes of shared memory a block; ${dev.info.name} allows ${dev.info.maxSharedMemoryPerBlock}`);
  }
  dev.driver.funcSetAttribute(kernel.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
  dev.driver.funcSetAttribute(kernel.fn, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
  sharedLimits.set(kernel, bytes);
  return kernel;
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

// Launchers for the MoE stage kernels (route.cu, dispatch.cu, grouped.cu, grouped-mma*.cu): grid sizes, shared
// memory and argument lists, queued on the device's stream. Arguments are device addresses; scratch memory comes
// from the allocator and goes back to it once queued (the one stream orders its reuse).
//
// Legend: T = tokens, E = experts, K = top-k, N = routed slots/rows (T*K), D = row length, Kin/Nout = GEMM sizes.
import type { FloatDType } from '../../../core/dtype.ts';
import { assert, fail } from '../../../core/errors.ts';
import type { ClampedGlu, RouterSpec } from '../../backend.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, Kernel, KernelFile } from '../launch.ts';

const ROUTE: KernelFile = { file: 'route.cu' };
const DISPATCH: KernelFile = { file: 'dispatch.cu' };
const GROUPED: KernelFile = { file: 'grouped.cu' };
const GROUPED_MMA: KernelFile = { file: 'grouped-mma.cu' };
const GROUPED_MMA_GLU: KernelFile = { file: 'grouped-mma-glu.cu' };

/** Shared memory a block may take without opting in (cuFuncSetAttribute). */
const STATIC_SHARED_LIMIT = 48 * 1024;
/** Must match route.cu (warp_top_k keeps chosen ids in lanes) and dispatch.cu (SORT_CHUNK, MAX_TOPK). */
const MAX_ROUTE_TOPK = 32;
const SORT_CHUNK = 2048;
const MAX_SCATTER_TOPK = 64;
/** Must match grouped.cu. */
const GROUPED_TILE = 64;
const GROUPED_THREADS = 256;
/** grouped_gemv (grouped.cu): GEMV_COLS output columns and GEMV_WARPS × 32 threads a block. */
const GEMV_COLUMNS = 32;
const GEMV_THREADS = 256;
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

/** Every router variant in one launch: one warp per token, 4 warps a block (fewer when E is large). */
export function routeInto(dev: CudaDevice, dtype: FloatDType, a: RouteArgs, spec: RouterSpec): void {
  const K = spec.topK;
  if (!(K >= 1 && K <= a.E && K <= MAX_ROUTE_TOPK)) fail('unsupported', `route on cuda takes 1 ≤ topK ≤ min(experts, ${MAX_ROUTE_TOPK}); got topK ${K} of ${a.E} experts`);
  const G = spec.groups?.count ?? 0;
  const keep = spec.groups?.keep ?? 0;
  if (G > 0 && !(a.E % G === 0 && a.E / G >= 2 && keep >= 1 && keep <= G)) {
    fail('usage', `route: ${a.E} experts cannot form ${G} groups keeping ${keep}; experts must split into groups of 2 or more`);
  }
  const perWarpBytes = (3 * a.E + 2 * G) * 4;
  const warps = Math.min(4, Math.floor(STATIC_SHARED_LIMIT / perWarpBytes));
  if (warps < 1) fail('unsupported', `route on cuda supports up to ${Math.floor(STATIC_SHARED_LIMIT / 12)} experts; got ${a.E}`);
  if (a.T === 0) return;
  const kernel = dev.kernel(ROUTE, `route_${dtype}`, ['ptr', 'ptr', 'ptr', 'ptr', 'u64', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f64']);
  const grid = Math.min(Math.ceil(a.T / warps), 2 ** 31 - 1);
  dev.launch(kernel, grid, warps * 32, [
    a.weights, a.experts, a.logits, a.bias, a.T, a.E, K, SCORING[spec.scoring], G, keep, spec.normalize ? 1 : 0, spec.scale ?? 1,
  ], warps * perWarpBytes);
}

/** Stable counting sort of N expert ids into slots i32 [N] and offsets i32 [E + 1]; three launches. */
export function sortByExpertInto(dev: CudaDevice, slots: number, offsets: number, experts: number, N: number, E: number): void {
  if (E * 4 > STATIC_SHARED_LIMIT) fail('unsupported', `sortByExpert on cuda supports up to ${STATIC_SHARED_LIMIT / 4} experts; got ${E}`);
  if (N >= 2 ** 31) fail('unsupported', `sortByExpert on cuda supports fewer than 2^31 slots; got ${N}`);
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

/** out [N, D] row n = x [T, D] row slots[n] / K. */
export function gatherRowsInto(dev: CudaDevice, dtype: FloatDType, out: number, x: number, slots: number, K: number, N: number, D: number): void {
  if (N === 0 || D === 0) return;
  const kernel = dev.kernel(DISPATCH, `gather_rows_${dtype}`, ['ptr', 'ptr', 'ptr', 'i32', 'u64', 'u64']);
  dev.launch(kernel, Math.min(N, dev.info.multiprocessors * 32), rowThreads(D), [out, x, slots, K, N, D]);
}

/**
 * out [T, D] = Σ weights.flat[s] · y[n] over sorted rows n with slot s = slots[n] of token t: the slots are inverted
 * into each slot's sorted row, then each token sums its K rows in sorted order (deterministic, no atomics).
 */
export function scatterAddWeightedInto(
  dev: CudaDevice, dtype: FloatDType, out: number, y: number, slots: number, weights: number, N: number, T: number, K: number, D: number,
): void {
  if (K > MAX_SCATTER_TOPK) fail('unsupported', `scatterAddWeighted on cuda supports up to ${MAX_SCATTER_TOPK} experts per token; got ${K}`);
  if (T * K >= 2 ** 31) fail('unsupported', `scatterAddWeighted on cuda supports fewer than 2^31 slots; got ${T * K}`);
  if (T === 0 || D === 0) return;
  const position = dev.alloc(T * K * 4); // i32 [T*K]: each slot's sorted row, -1 for none
  try {
    dev.driver.fillBytes(position.pointer, 0xff, T * K * 4, dev.stream);
    if (N > 0) dev.launchElementwise(dev.kernel(DISPATCH, 'invert_slots', ['ptr', 'ptr', 'u64', 'u64']), N, [position.pointer, slots, N, T * K]);
    const kernel = dev.kernel(DISPATCH, `scatter_add_weighted_${dtype}`, ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'u64', 'u64']);
    dev.launch(kernel, Math.min(T, dev.info.multiprocessors * 32), Math.max(rowThreads(D), roundUp32(K)), [out, y, position.pointer, weights, K, T, D]);
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

/** The kernels groupedLinearInto can run: GEMV (few rows), CUDA-core 64×64 tiles, tensor-core tiles of 64 or 128 rows. */
export type GroupedLinearPath = 'gemv' | 'tiled' | keyof typeof MMA_TILES;

/**
 * The kernel for these arguments. Tensor cores for bf16/f16 on sm_80+ when rows are 16-byte aligned (Kin % 8 == 0,
 * x and w 16-byte aligned); otherwise (f32, odd Kin) the GEMV and the CUDA-core tiles as before.
 */
export function groupedLinearPath(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs): GroupedLinearPath {
  const mma = dtype !== 'f32' && dev.info.computeCapability >= MMA_MIN_COMPUTE_CAPABILITY && a.Kin % 8 === 0 && a.x % 16 === 0 && a.w % 16 === 0;
  if (!mma) return a.N <= Math.max(GEMV_MAX_ROWS, GEMV_ROWS_PER_EXPERT * a.E) ? 'gemv' : 'tiled';
  if (a.N <= MMA_MIN_ROWS_PER_EXPERT * a.E) return 'gemv';
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
 * = 2F) and a.bias f32 [E, 2F] or 0. Only where groupedLinear takes the tensor cores (`path` mma64 or mma128, as
 * groupedLinearPath picks); returns false without queuing anything otherwise, and the caller runs the two ops. The
 * gate and up sums enter the activation in f32 (the two ops round them to the dtype first), then round once.
 */
export function groupedSwiGluInto(
  dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs, clamped?: ClampedGlu, path = groupedLinearPath(dev, dtype, a),
): boolean {
  if (path === 'gemv' || path === 'tiled') return false;
  assert(a.Nout % 2 === 0, `groupedSwiGlu: gate|up weights need an even row count, got ${a.Nout}`);
  if (a.N > 0 && a.Nout > 0) groupedMmaInto(dev, dtype, a, path, clamped ?? 'silu');
  return true;
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

/** The small-N path of groupedLinearInto (grouped_gemv_<dtype>, same arguments but column strips last). */
function groupedGemvInto(dev: CudaDevice, dtype: FloatDType, a: GroupedLinearArgs): void {
  const colStrips = Math.ceil(a.Nout / GEMV_COLUMNS);
  const grid = colStrips * Math.max(1, Math.min(a.E, a.N));
  if (grid >= 2 ** 31) fail('unsupported', `groupedLinear on cuda: ${a.Nout} outputs over ${a.E} experts is too large for one grid`);
  const kernel = dev.kernel(GROUPED, `grouped_gemv_${dtype}`, GROUPED_ARGS);
  dev.launch(kernel, grid, GEMV_THREADS, [a.out, a.x, a.w, a.bias, a.offsets, a.E, a.N, a.Nout, a.Kin, colStrips]);
}

/** Threads for a kernel that walks a row of D elements: a multiple of 32, at most 256. */
function rowThreads(D: number): number {
  return Math.min(256, roundUp32(D));
}

function roundUp32(n: number): number {
  return Math.max(32, Math.ceil(n / 32) * 32);
}

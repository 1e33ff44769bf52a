// Launchers for the routing and token-permutation kernels of the MoE layer (route.cu, dispatch.cu): grid sizes,
// shared memory and argument lists, queued on the device's stream. Arguments are device addresses; scratch memory
// comes from the allocator and goes back to it once queued (the one stream orders its reuse). The experts' GEMMs are
// launched from grouped.ts.
//
// Legend: T = tokens, E = experts, K = top-k, N = routed slots/rows (T*K), D = row length.
import type { FloatDType } from '../../../core/dtype.ts';
import { fail } from '../../../core/errors.ts';
import type { RouterSpec } from '../../backend.ts';
import type { CudaDevice } from '../device.ts';
import { DEFAULT_SHARED_BYTES, type KernelFile } from '../launch.ts';
import { fitsPacks, packElements, powerOfTwoAtLeast } from './row-layout.ts';

const ROUTE: KernelFile = { file: 'route.cu' };
const DISPATCH: KernelFile = { file: 'dispatch.cu' };

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
  const warps = Math.min(4, Math.floor(DEFAULT_SHARED_BYTES / perWarpBytes));
  if (warps < 1) fail('unsupported', `route on cuda supports up to ${Math.floor((DEFAULT_SHARED_BYTES - 128) / 12)} experts; got ${a.E}`);
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
  if (E * 4 > DEFAULT_SHARED_BYTES) fail('unsupported', `sortByExpert on cuda supports up to ${DEFAULT_SHARED_BYTES / 4} experts; got ${E}`);
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

// Launchers for attention.cu (CUDA cores: any head dims, f32/bf16/f16) and attention-mma.cu (tensor cores: bf16/f16
// with the head dims it is built for), the "launchers" half of those files: which kernel, how many rows a block
// holds, how many splits the keys are cut into, the f32 scratch for split partials and the merge launch.
// Everything is decided from the shape and the window, never from the positions (the kernels read those on the
// device), so a decode step captured in a CUDA graph replays with new positions in the same buffer.
//
// q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv] -> out [B, T, H, Dv]; positions i32 [B, T]; sinks f32 [H] or 0.
// B = sequences, T = queries per sequence, S = cache rows per sequence, H = query heads, Hkv = key/value heads,
// G = H / Hkv, Dh = key dim, Dv = value dim; rows = the T·G (token, head) pairs of one kv head (attention.cuh).
import type { FloatDType } from '../../../core/dtype.ts';
import { assert, fail } from '../../../core/errors.ts';
import type { DeviceInfo } from '../driver.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, Kernel, KernelFile } from '../launch.ts';

const SIMPLE: KernelFile = { file: 'attention.cu' };
const MMA: KernelFile = { file: 'attention-mma.cu' };

/** attention.cu: BLOCK threads, TILE keys a tile, MAX_ROWS rows a block, MERGE_THREADS, MAX_SPLITS. */
const SIMPLE_BLOCK = 128;
const SIMPLE_TILE = 32;
const SIMPLE_MAX_ROWS = 16;
const MERGE_THREADS = 128;
const MAX_SPLITS = 256;
/** attention.cu's kernel needs 77 registers (ptxas, sm_90): 6 blocks per SM unless shared memory binds. */
const SIMPLE_BLOCKS_PER_SM = 6;
/** Shared words per row of attention.cu beyond Dh + Dv: the tile's scores, max, denominator, rescale, first, last. */
const SIMPLE_ROW_EXTRA = SIMPLE_TILE + 5;

/** attention-mma.cu: MMA_THREADS, KEY_TILE, MMA_SHARED_BYTES, and each (Dh, Dv) instance's MINB for KW = 4 and 1. */
const MMA_THREADS = 128;
const MMA_KEY_TILE = 64;
const mmaSharedBytes = (Dh: number, Dv: number) => 2 * MMA_KEY_TILE * (Dh + 8 + Dv + 8) * 2 + 2 * 64 * 4;
const MMA_INSTANCES: readonly { Dh: number; Dv: number; blocksPerSm: Record<1 | 4, number> }[] = [
  { Dh: 64, Dv: 64, blocksPerSm: { 4: 4, 1: 3 } },
  { Dh: 128, Dv: 128, blocksPerSm: { 4: 3, 1: 2 } },
  { Dh: 192, Dv: 128, blocksPerSm: { 4: 2, 1: 2 } },
];

// Dynamic shared memory a launch may use without opting in (cuFuncSetAttribute), and what the system keeps per
// resident block (an SM's shared memory is the opt-in maximum per block plus that: 228 KiB on sm_90, 164 on sm_80).
const DEFAULT_SHARED_BYTES = 48 * 1024;
const SHARED_RESERVED_PER_BLOCK = 1024;
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
const CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9;

/**
 * Splits: the keys a block sees are cut into s runs so that the grid fills the GPU. The blocks of a launch do equal
 * work and run in waves of SMs × (blocks resident per SM), so the time goes as waves(s) × (keys / s + overhead),
 * the overhead (start-up, writing and merging the partials) counted as BLOCK_OVERHEAD_KEYS keys; s minimises that,
 * with at least MIN_SPLIT_KEYS keys a split. Short caches and prefill get one split: no partials, no merge.
 */
const BLOCK_OVERHEAD_KEYS = 64;
const MIN_SPLIT_KEYS = 256;

/** The largest Dh + Dv the CUDA-core kernel takes (one row's query and accumulator in 48 KiB of shared memory). */
export const MAX_ATTENTION_DIMS = DEFAULT_SHARED_BYTES / 4 - SIMPLE_ROW_EXTRA;

export interface AttentionShape { B: number; T: number; S: number; H: number; Hkv: number; Dh: number; Dv: number }

export interface AttentionLaunch {
  scale: number;
  /** Undefined: no window. A query at p sees keys j with p - window < j ≤ p. */
  window: number | undefined;
  /** Device address of the f32 [H] sinks, 0 for none. */
  sinks: number;
  /** Device address of the i32 [B, T] positions. */
  positions: number;
}

/** For benchmarks: a split count instead of the planned one. */
export interface AttentionTuning { splits?: number }

export interface AttentionPlan {
  kernel: string;
  /** 'mma': tensor cores; 'simple': CUDA cores. */
  path: 'mma' | 'simple';
  rowsPerBlock: number;
  splits: number;
  blocks: number;
  threads: number;
  sharedBytes: number;
}

const SIMPLE_ARGS: readonly ArgKind[] = [
  'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32',
];
const MMA_ARGS: readonly ArgKind[] = [
  'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32',
];
const MERGE_ARGS: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32'];

/** Whether the tensor-core kernel takes this call: bf16/f16 on sm_80+, built (Dh, Dv), 16-byte aligned k and v. */
function mmaInstance(info: DeviceInfo, dtype: FloatDType, { Dh, Dv }: AttentionShape, aligned: boolean) {
  if (dtype === 'f32' || info.computeCapability < 80 || !aligned || mmaSharedBytes(Dh, Dv) > info.maxSharedMemoryPerBlock) return undefined;
  return MMA_INSTANCES.find((m) => m.Dh === Dh && m.Dv === Dv);
}

/** The split count with the least modelled time (see BLOCK_OVERHEAD_KEYS); ties go to fewer splits. */
function splitCount(blocks: number, slots: number, keys: number): number {
  const most = Math.max(1, Math.min(MAX_SPLITS, Math.floor(keys / MIN_SPLIT_KEYS)));
  let best = 1;
  let bestTime = Infinity;
  for (let s = 1; s <= most; s++) {
    const time = Math.ceil((blocks * s) / slots) * (keys / s + BLOCK_OVERHEAD_KEYS);
    if (time < bestTime * 0.99) [best, bestTime] = [s, time];
  }
  return best;
}

/** Kernel, rows a block and splits for one call; a function of the shape and window only. */
export function planAttention(
  info: DeviceInfo, dtype: FloatDType, shape: AttentionShape, window: number | undefined, aligned: boolean, tuning: AttentionTuning = {},
): AttentionPlan {
  const { B, T, S, H, Hkv, Dh, Dv } = shape;
  const G = H / Hkv;
  const rows = T * G;
  const mma = mmaInstance(info, dtype, shape, aligned);
  let plan: Omit<AttentionPlan, 'splits' | 'blocks'>;
  let perSm: number;
  if (mma) {
    const keyGroups = rows <= 16 ? 4 : 1; // ≤ 16 rows: four warps share them and split each key tile
    plan = {
      kernel: `attention_mma_${dtype}_${Dh}_${Dv}_${keyGroups}`, path: 'mma', rowsPerBlock: 64 / keyGroups,
      threads: MMA_THREADS, sharedBytes: mmaSharedBytes(Dh, Dv),
    };
    perSm = mma.blocksPerSm[keyGroups];
  } else {
    const fit = Math.floor(DEFAULT_SHARED_BYTES / 4 / (Dh + Dv + SIMPLE_ROW_EXTRA));
    const rowsPerBlock = Math.max(1, Math.min(SIMPLE_MAX_ROWS, rows, fit));
    plan = {
      kernel: `attention_${dtype}`, path: 'simple', rowsPerBlock, threads: SIMPLE_BLOCK,
      sharedBytes: rowsPerBlock * (Dh + Dv + SIMPLE_ROW_EXTRA) * 4,
    };
    perSm = SIMPLE_BLOCKS_PER_SM;
  }
  const sharedPerSm = info.maxSharedMemoryPerBlock + SHARED_RESERVED_PER_BLOCK;
  perSm = Math.max(1, Math.min(perSm, Math.floor(sharedPerSm / (plan.sharedBytes + SHARED_RESERVED_PER_BLOCK))));
  const base = B * Hkv * Math.ceil(rows / plan.rowsPerBlock);
  // Keys one block sees at most: all S, or with a window, the window plus the ~rowsPerBlock / G tokens it holds.
  const keys = window === undefined ? S : Math.min(S, Math.max(0, window) + Math.ceil(plan.rowsPerBlock / G) - 1);
  const splits = tuning.splits !== undefined ? Math.max(1, Math.min(MAX_SPLITS, Math.floor(tuning.splits)))
    : splitCount(base, info.multiprocessors * perSm, keys);
  return { ...plan, splits, blocks: base * splits };
}

/** Tensor-core kernels already set up for their shared memory. */
const configured = new WeakSet<Kernel>();

/**
 * The tensor-core kernel `name`, allowed `bytes` of dynamic shared memory (above 48 KiB a kernel must opt in) and
 * preferring the largest shared-memory carveout, so the resident blocks the split plan counts on fit beside each other.
 */
function mmaKernel(dev: CudaDevice, name: string, bytes: number): Kernel {
  const kernel = dev.kernel(MMA, name, MMA_ARGS);
  if (!configured.has(kernel)) {
    if (bytes > DEFAULT_SHARED_BYTES) dev.driver.funcSetAttribute(kernel.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
    dev.driver.funcSetAttribute(kernel.fn, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
    configured.add(kernel);
  }
  return kernel;
}

/** out = attention(q, k, v) as the CPU's attentionValues computes it (f32 arithmetic, output rounded once). */
export function attentionInto(
  dev: CudaDevice, dtype: FloatDType, out: number, q: number, k: number, v: number,
  shape: AttentionShape, opts: AttentionLaunch, tuning?: AttentionTuning,
): void {
  const { B, T, S, H, Hkv, Dh, Dv } = shape;
  if (Dh + Dv > MAX_ATTENTION_DIMS) {
    fail('unsupported', `attention on cuda takes key + value head dims up to ${MAX_ATTENTION_DIMS}, got ${Dh} + ${Dv}; use --device cpu`);
  }
  assert(Hkv > 0 && H % Hkv === 0 && B * T * H < 2 ** 31 && S < 2 ** 31, `attention shape ${JSON.stringify(shape)}`);
  if (B * T * H === 0 || Dv === 0) return;
  // No window: S reaches key 0 from every position (they are clamped below S). A window below 1 shows no key.
  const window = opts.window === undefined ? S : Math.min(S, Math.max(0, Math.floor(opts.window)));
  const aligned = k % 16 === 0 && v % 16 === 0 && q % 4 === 0;
  const plan = planAttention(dev.info, dtype, shape, opts.window, aligned, tuning);
  const rows = B * T * H;
  const scratch = plan.splits > 1 ? dev.alloc(rows * plan.splits * (Dv + 2) * 4) : undefined;
  const acc = scratch?.pointer ?? 0; // f32 [rows, splits, Dv]
  const ml = scratch ? acc + rows * plan.splits * Dv * 4 : 0; // f32 [rows, splits, 2]
  try {
    const common = [out, ml, acc, q, k, v, opts.sinks, opts.positions, B, T, S, H, Hkv];
    if (plan.path === 'mma') {
      const kernel = mmaKernel(dev, plan.kernel, plan.sharedBytes);
      dev.launch(kernel, plan.blocks, plan.threads, [...common, window, plan.splits, opts.scale], plan.sharedBytes);
    } else {
      const kernel = dev.kernel(SIMPLE, plan.kernel, SIMPLE_ARGS);
      dev.launch(kernel, plan.blocks, plan.threads, [...common, Dh, Dv, window, plan.splits, plan.rowsPerBlock, opts.scale], plan.sharedBytes);
    }
    if (plan.splits > 1) {
      const merge = dev.kernel(SIMPLE, `attention_merge_${dtype}`, MERGE_ARGS);
      dev.launch(merge, rows, MERGE_THREADS, [out, ml, acc, opts.sinks, H, Dv, plan.splits]);
    }
  } finally {
    // Queued: the one stream orders any reuse after these kernels (under graph capture the pool is the graph's own).
    if (scratch) dev.allocator.release(scratch);
  }
}

// Launcher for attention.cu (the "launchers" half of that file): one block of ATTENTION_BLOCK threads per
// (query token, head), dynamic shared memory for q, the output accumulator and one tile of scores/probabilities.
//
// q [T, H, Dh], k [S, Hkv, Dh], v [S, Hkv, Dv] -> out [T, H, Dv]; sinks: f32 [H] or 0 (none).
// T = query tokens, S = cache rows, H = query heads, Hkv = key/value heads, Dh = key dim, Dv = value dim.
import type { FloatDType } from '../../../core/dtype.ts';
import { fail } from '../../../core/errors.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, KernelFile } from '../launch.ts';

const SOURCE: KernelFile = { file: 'attention.cu' };

/** BLOCK and TILE in attention.cu. */
const ATTENTION_BLOCK = 128;
const ATTENTION_TILE = 128;
/** Dynamic shared memory a launch may use without opting in (cuFuncSetAttribute). */
const MAX_SHARED_BYTES = 48 * 1024;

const ARGS: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64', 'u64', 'f32', 'u64', 'u64', 'u64'];

export interface AttentionShape {
  T: number; H: number; Hkv: number; Dh: number; Dv: number;
}

export interface AttentionLaunch {
  scale: number;
  queryStart: number;
  kvLength: number;
  /** Undefined: no window. */
  window: number | undefined;
  /** Device address of the f32 [H] sinks, 0 for none. */
  sinks: number;
}

/** The largest Dh + Dv the kernel takes (its shared memory holds both, in f32, beside one tile). */
export const MAX_ATTENTION_DIMS = MAX_SHARED_BYTES / 4 - 2 * ATTENTION_TILE;

/** out = attention(q, k, v) as the CPU's attentionValues computes it (f32 arithmetic, output rounded once). */
export function attentionInto(
  dev: CudaDevice, dtype: FloatDType, out: number, q: number, k: number, v: number,
  { T, H, Hkv, Dh, Dv }: AttentionShape, opts: AttentionLaunch,
): void {
  if (Dh + Dv > MAX_ATTENTION_DIMS) {
    fail('unsupported', `attention on cuda takes key + value head dims up to ${MAX_ATTENTION_DIMS}, got ${Dh} + ${Dv}; use --device cpu`);
  }
  if (T * H === 0 || Dv === 0) return;
  // No window: one that reaches key 0 from every query (p - window + 1 <= 0 for p < queryStart + T). A window
  // below 1 shows no key, as 0 does.
  const window = opts.window === undefined ? opts.queryStart + T : Math.max(0, opts.window);
  const sharedBytes = (Dh + Dv + 2 * ATTENTION_TILE) * 4;
  const kernel = dev.kernel(SOURCE, `attention_${dtype}`, ARGS);
  dev.launch(kernel, T * H, ATTENTION_BLOCK, [
    out, q, k, v, opts.sinks, H, Hkv, Dh, Dv, opts.scale, opts.queryStart, opts.kvLength, window,
  ], sharedBytes);
}

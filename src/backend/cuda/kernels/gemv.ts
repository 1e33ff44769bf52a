// The GEMV kernels' plan and the dense launchers (gemv.cu: `linear` at small T, and `linearSplit` over stacked
// weights; the grouped GEMV of grouped.cu is launched from moe.ts with the same plan). All stream each weight byte
// once per pass of R rows through the core of gemv.cuh: units of WC weight rows (columns) × all of Kin, each done by
// a team of S warps, at most one resident wave of blocks looping over the units.
//
// Legend: T = rows of x, Kin = input features, Nout = output features, R = rows of x a pass, WC = columns a unit,
// S = warps a team (splitting Kin), V = elements per 16-byte load.
import type { FloatDType } from '../../../core/dtype.ts';
import { assert } from '../../../core/errors.ts';
import type { CudaDevice } from '../device.ts';
import type { ArgKind, KernelFile } from '../launch.ts';

const GEMV: KernelFile = { file: 'gemv.cu' };
const GEMV_ARGS: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64', 'i32'];
const SPLIT_GEMV_ARGS: readonly ArgKind[] = ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'u64', 'u64', 'u64', 'u64', 'u64', 'i32'];
/** Outputs a split GEMV writes at most (gemv.cu gemv_split_*: out0, out1, out2). */
export const SPLIT_GEMV_MAX_PARTS = 3;

/** Must match gemv.cuh: GEMV_MAX_WARPS warps a block at most, GEMV_LOADS 16-byte weight loads in flight per lane. */
const MAX_BLOCK_WARPS = 8;
const LOADS_PER_LANE = 8;
/**
 * Warp-wide loads (512 bytes each) in flight per SM that keep HBM streaming: 16 warps × 8 loads (64 KiB), what the
 * first grouped GEMV had when it read Mixtral's experts at ~98 % of the copy rate (bench/NOTES.md, run 5).
 */
const TARGET_LOADS_PER_SM = 128;
/** How full the last turn of the resident warps must be when it has fewer loads in flight than that (planGemv). */
const BALANCE = 0.85;
/**
 * The dense GEMV serves T ≤ DENSE_MAX_ROWS. Measured on the H200 (bench/gemv.ts, bench/NOTES.md run 9) against cuBLAS
 * in graph replay: at T = 1 equal or better (small k/v projections 3.8 vs 5.4 µs; LM heads 94–109 % of the byte
 * floor), at T = 2 mixed, at T = 8 2–3× slower (each 16-byte weight load then feeds 8·T FMAs and widenings, more
 * than an SM issues in the time HBM brings those bytes; cuBLAS's tensor cores read the weights at the same cost for
 * any small T). So one row only; the bench still times T = 2 and 8 through `maxRows`.
 */
export const DENSE_MAX_ROWS = 1;

export type GemvRows = 1 | 2 | 4 | 8;
export type GemvColumns = 1 | 2 | 4;
export type GemvTeamWarps = 1 | 2 | 4 | 8;

/** What planGemv decides: kernel instance (rows, columns), warps a team and a block, blocks. */
export interface GemvPlan {
  rows: GemvRows;
  columns: GemvColumns;
  teamWarps: GemvTeamWarps;
  blockWarps: number;
  grid: number;
}

/** What the plan depends on. matrices: weight matrices [Nout, Kin] streamed (hit experts, at most; 1 for dense). */
export interface GemvShape {
  matrices: number;
  Nout: number;
  Kin: number;
  /** Elements a lane reads per load: 16 / element size, or 1 on the scalar path. */
  vector: number;
  rows: GemvRows;
  /** Blocks of MAX_BLOCK_WARPS warps an SM holds for each column count (the kernels' __launch_bounds__). */
  blocksPerSM: (columns: GemvColumns) => number;
}

/**
 * The plan that keeps enough loads in flight. Candidates in order of preference — fewer warps a team first (a team
 * of S > 1 pays a shared-memory reduction per unit), then more columns a unit (fewer x loads per weight load) — and
 * the first that qualifies wins, else the one with the most loads in flight. Loads in flight = busy warps × loads
 * each issues a round, busy warps = min(units · S, resident warps); it must reach TARGET_LOADS_PER_SM per SM (or
 * nearly all the loads there are). When the units take several turns of the resident warps, the last turn must
 * also keep that many in flight or be at least BALANCE full (else its few warps would run at latency, not
 * bandwidth: e.g. 3072 units of 4 columns on 2112 warps).
 */
export function planGemv(sms: number, s: GemvShape, tuning: Partial<GemvPlan> = {}): GemvPlan {
  const steps = Math.max(1, Math.ceil(s.Kin / (32 * s.vector))); // warp-wide loads per column
  const target = 0.9 * Math.min(sms * TARGET_LOADS_PER_SM, s.matrices * s.Nout * steps);
  let best: { columns: GemvColumns; teamWarps: GemvTeamWarps; inFlight: number } | undefined;
  let found = false;
  for (const teamWarps of [1, 2, 4, 8] as const) {
    for (const columns of [4, 2, 1] as const) {
      if (columns * 4 < s.rows) continue; // 8 rows on 1 column: 8 x loads per weight load
      const warps = s.matrices * Math.ceil(s.Nout / columns) * teamWarps;
      const resident = sms * s.blocksPerSM(columns) * MAX_BLOCK_WARPS;
      const perWarp = columns * Math.min(LOADS_PER_LANE / columns, Math.ceil(steps / teamWarps));
      const inFlight = Math.min(warps, resident) * perWarp;
      const turns = Math.ceil(warps / resident);
      const lastTurn = warps - (turns - 1) * resident;
      found = inFlight >= target && (turns === 1 || lastTurn * perWarp >= target || warps / (turns * resident) >= BALANCE);
      if (found || !best || inFlight > best.inFlight) best = { columns, teamWarps, inFlight };
      if (found) break;
    }
    if (found) break;
  }
  const columns = tuning.columns ?? best!.columns;
  const teamWarps = tuning.teamWarps ?? best!.teamWarps;
  return { rows: s.rows, columns, teamWarps, ...gemvGrid(sms, s, columns, teamWarps, tuning) };
}

/**
 * Blocks of 8 warps while that fills every SM (smaller blocks, down to one team, spread few units over more SMs), and
 * no more blocks than one resident wave or than the units need.
 */
function gemvGrid(sms: number, s: GemvShape, columns: GemvColumns, teamWarps: GemvTeamWarps, tuning: Partial<GemvPlan>) {
  const units = s.matrices * Math.ceil(s.Nout / columns);
  let blockWarps = tuning.blockWarps ?? MAX_BLOCK_WARPS;
  if (tuning.blockWarps === undefined) {
    while (blockWarps > teamWarps && Math.ceil((units * teamWarps) / blockWarps) < sms) blockWarps /= 2;
  }
  const wave = sms * s.blocksPerSM(columns) * (MAX_BLOCK_WARPS / blockWarps);
  const grid = tuning.grid ?? Math.max(1, Math.min(wave, Math.ceil((units * teamWarps) / blockWarps)));
  return { blockWarps, grid };
}

/** Rows a pass for T rows: the smallest instance that takes them all at once. */
export function gemvRows(T: number): GemvRows {
  return T <= 1 ? 1 : T <= 2 ? 2 : T <= 4 ? 4 : 8;
}

/** gemv.cu's __launch_bounds__: 3 blocks an SM (80 registers) where that spills nothing, else 2 (128). */
export function denseBlocksPerSM(rows: GemvRows, columns: GemvColumns): number {
  return columns === 1 || rows * columns <= 4 ? 3 : 2;
}

export interface DenseGemvArgs {
  out: number; // [T, Nout]
  x: number; // [T, Kin]
  w: number; // [Nout, Kin]
  bias: number; // [Nout] of the dtype, or 0 for none
  T: number;
  Nout: number;
  Kin: number;
}

/**
 * The dense GEMV's plan for `linear`, or undefined where it does not apply and cuBLAS runs: f32 (cuBLAS without TF32
 * is the reference there), T > DENSE_MAX_ROWS, or rows that are not 16-byte vectors (Kin % 8, unaligned x or w).
 */
export function denseGemvPlan(
  dev: CudaDevice, dtype: FloatDType, a: DenseGemvArgs, tuning: Partial<GemvPlan> = {}, maxRows = DENSE_MAX_ROWS,
): GemvPlan | undefined {
  if (dtype === 'f32' || a.T < 1 || a.T > maxRows || a.Kin % 8 !== 0 || a.x % 16 !== 0 || a.w % 16 !== 0) return undefined;
  const rows = tuning.rows ?? gemvRows(a.T);
  const shape = { matrices: 1, Nout: a.Nout, Kin: a.Kin, vector: 8, rows, blocksPerSM: (c: GemvColumns) => denseBlocksPerSM(rows, c) };
  return planGemv(dev.info.multiprocessors, shape, tuning);
}

/** out = x · wᵀ (+ bias) by gemv_<dtype>_<R>x<WC> (denseGemvPlan's plan). */
export function denseGemvInto(dev: CudaDevice, dtype: FloatDType, a: DenseGemvArgs, plan: GemvPlan): void {
  if (a.T === 0 || a.Nout === 0) return;
  const kernel = dev.kernel(GEMV, `gemv_${dtype}_${plan.rows}x${plan.columns}`, GEMV_ARGS);
  dev.launch(kernel, plan.grid, plan.blockWarps * 32, [a.out, a.x, a.w, a.bias, a.T, a.Nout, a.Kin, plan.teamWarps]);
}

/** The split GEMV's operands: w [ΣNi, Kin] stacked by rows, out i [T, Ni] (at most SPLIT_GEMV_MAX_PARTS parts). */
export interface SplitGemvArgs {
  outs: readonly number[];
  x: number; // [T, Kin]
  w: number; // [ΣNi, Kin]
  bias: number; // [ΣNi] of the dtype, or 0 for none
  T: number;
  sizes: readonly number[]; // Ni
  Kin: number;
}

/**
 * out i = x · (rows of part i of w)ᵀ (+ its bias) for every part in one launch of gemv_split_<dtype>_1x<WC>, with the
 * plan denseGemvPlan makes for the stacked matrix (Nout = ΣNi; one row a pass, as the dense GEMV serves T = 1).
 */
export function splitGemvInto(dev: CudaDevice, dtype: FloatDType, a: SplitGemvArgs, plan: GemvPlan): void {
  const parts = a.sizes.length;
  assert(parts >= 1 && parts <= SPLIT_GEMV_MAX_PARTS && a.outs.length === parts && plan.rows === 1,
    `splitGemvInto: ${parts} parts, ${a.outs.length} outputs, ${plan.rows} rows a pass`);
  if (a.T === 0) return;
  const [outs, sizes] = [[0, 0, 0], [0, 0, 0]];
  a.outs.forEach((o, i) => (outs[i] = o));
  a.sizes.forEach((n, i) => (sizes[i] = n));
  const kernel = dev.kernel(GEMV, `gemv_split_${dtype}_1x${plan.columns}`, SPLIT_GEMV_ARGS);
  dev.launch(kernel, plan.grid, plan.blockWarps * 32, [...outs, a.x, a.w, a.bias, a.T, ...sizes, a.Kin, plan.teamWarps]);
}

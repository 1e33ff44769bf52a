// The CUDA attention kernels (src/backend/cuda/kernels/attention.ts), called directly with device buffers. First
// checked against the CPU reference (attentionValues): the conformance suite's shapes as one sequence, batches with
// scattered positions, windows, sinks and NaN in the unread cache rows, the tensor-core path's shapes with forced
// splits, and a CUDA graph captured once and replayed with new positions. Then timed: decode (T = 1, every sequence
// at position S - 1) against its floor, the visible K/V bytes ÷ the measured copy bandwidth; prefill (T = S) against
// its FLOPs ÷ the measured bf16 GEMM rate. Prints a table last; --json FILE writes the cells.
//   node --import tsx bench/attention.ts [--json FILE] [--quick] [--sweep] [--check-only]
// --quick: fewer timed cells; --sweep: each decode cell also at other split counts (the best is reported).
//
// Legend: B = sequences, T = queries per sequence, S = cache rows per sequence, H / Hkv = query / key-value heads,
// Dh / Dv = key / value head dims, G = H / Hkv.
import { writeFileSync } from 'node:fs';
import { attentionValues } from '../src/backend/cpu/rope-attention.ts';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.ts';
import type { CudaDevice } from '../src/backend/cuda/device.ts';
import { attentionInto, planAttention, type AttentionShape, type AttentionTuning } from '../src/backend/cuda/kernels/attention.ts';
import { describeDevice, formatTable, median } from '../src/bench/measure.ts';
import { DTYPE_BYTES, fromF32, type FloatDType, type HostArray } from '../src/core/dtype.ts';
import { widen } from '../src/core/widen.ts';
import { DeviceBuffers, option, relError, runBench, timeInGraph, TOLERANCE } from './kernel-bench.ts';

/** values rounded to dtype: [device bits, the held values as f32]. */
function stored(values: Float32Array, dtype: FloatDType): [HostArray, Float32Array] {
  const bits = fromF32(values, dtype);
  return [bits, widen(bits, dtype)];
}

let seed = 1;
function normal(): number {
  seed = (seed * 48271) % 2147483647;
  const u1 = seed / 2147483647;
  seed = (seed * 48271) % 2147483647;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos((2 * Math.PI * seed) / 2147483647);
}

// ---- correctness ----------------------------------------------------------------------------------------------
export interface CheckCase {
  name: string; shape: AttentionShape; positions: number[]; window?: number; sinks?: boolean; tuning?: AttentionTuning;
}

/** Positions start[b] + t for t < T. */
const runs = (T: number, starts: number[]) => starts.flatMap((s) => Array.from({ length: T }, (_, t) => s + t));
const one = (T: number, S: number, H: number, Hkv: number, Dh: number, Dv: number): AttentionShape => ({ B: 1, T, S, H, Hkv, Dh, Dv });

export const CHECKS: CheckCase[] = [
  // The conformance suite's attention and sink cases, as one sequence at queryStart + t.
  { name: 'prefill, GQA 6/2', shape: one(33, 33, 6, 2, 16, 16), positions: runs(33, [0]) },
  { name: 'decode against a cache', shape: one(1, 64, 6, 2, 16, 16), positions: [40] },
  { name: 'chunked prefill after a cache', shape: one(7, 31, 4, 1, 8, 8), positions: runs(7, [20]) },
  { name: 'odd head dim', shape: one(31, 31, 3, 3, 17, 17), positions: runs(31, [0]) },
  { name: 'sliding window, prefill', shape: one(31, 31, 6, 3, 8, 8), positions: runs(31, [0]), window: 8 },
  { name: 'sliding window, decode', shape: one(1, 40, 2, 1, 8, 8), positions: [35], window: 5 },
  { name: 'value dim differs', shape: one(9, 9, 4, 2, 24, 16), positions: runs(9, [0]) },
  { name: 'one token, one key', shape: one(1, 1, 2, 1, 8, 8), positions: [0] },
  { name: 'long prefill, Dh 64', shape: one(130, 130, 4, 2, 64, 64), positions: runs(130, [0]) },
  { name: 'decode, long cache, Dh 64', shape: one(1, 320, 8, 2, 64, 64), positions: [300] },
  { name: 'sliding window, long prefill', shape: one(129, 129, 2, 1, 32, 32), positions: runs(129, [0]), window: 48 },
  { name: 'sinks, prefill', shape: one(31, 31, 6, 2, 16, 16), positions: runs(31, [0]), sinks: true },
  { name: 'sinks, window, chunked prefill', shape: one(7, 31, 4, 1, 17, 17), positions: runs(7, [20]), window: 9, sinks: true },
  { name: 'sinks, decode, Dh 64', shape: one(1, 130, 4, 4, 64, 64), positions: [127], sinks: true },
  // Batches, scattered positions, empty rows, forced splits.
  { name: 'B 2, gaps, window, sinks', shape: { B: 2, T: 3, S: 77, H: 6, Hkv: 2, Dh: 17, Dv: 13 }, positions: [4, 30, 31, 70, 10, 76], window: 9, sinks: true },
  { name: 'B 2, 5 splits', shape: { B: 2, T: 5, S: 61, H: 4, Hkv: 1, Dh: 24, Dv: 16 }, positions: [0, 1, 2, 40, 41, 60, 59, 3, 20, 21], sinks: true, tuning: { splits: 5 } },
  { name: 'window 0: nothing visible', shape: { B: 2, T: 2, S: 16, H: 2, Hkv: 1, Dh: 8, Dv: 8 }, positions: [3, 4, 9, 15], window: 0, sinks: true },
  // The tensor-core path's shapes (bf16/f16), and a head dim it has no instance for (Dh 72: CUDA cores).
  { name: 'Mixtral-like decode, B 2', shape: { B: 2, T: 1, S: 1000, H: 8, Hkv: 2, Dh: 128, Dv: 128 }, positions: [999, 400] },
  { name: 'Mixtral-like, 7 splits', shape: { B: 2, T: 1, S: 1000, H: 8, Hkv: 2, Dh: 128, Dv: 128 }, positions: [999, 37], tuning: { splits: 7 } },
  { name: 'Qwen3-like T 3, gaps, sinks', shape: { B: 2, T: 3, S: 600, H: 8, Hkv: 1, Dh: 128, Dv: 128 }, positions: [5, 290, 291, 599, 0, 130], sinks: true },
  { name: 'GPT-OSS-like window 128, sinks', shape: { B: 2, T: 2, S: 700, H: 16, Hkv: 2, Dh: 64, Dv: 64 }, positions: [650, 651, 10, 11], window: 128, sinks: true },
  { name: 'MLA-like decode 192/128', shape: { B: 2, T: 1, S: 500, H: 4, Hkv: 4, Dh: 192, Dv: 128 }, positions: [499, 66] },
  { name: 'MLA-like prefill 192/128', shape: { B: 1, T: 200, S: 300, H: 2, Hkv: 2, Dh: 192, Dv: 128 }, positions: runs(200, [100]) },
  { name: 'prefill Dh 128, B 2, 3 splits', shape: { B: 2, T: 150, S: 400, H: 8, Hkv: 2, Dh: 128, Dv: 128 }, positions: runs(150, [0, 250]), tuning: { splits: 3 } },
  { name: 'prefill Dh 64, window 20, sinks', shape: { B: 2, T: 90, S: 100, H: 4, Hkv: 2, Dh: 64, Dv: 64 }, positions: runs(90, [0, 10]), window: 20, sinks: true },
  { name: 'Dh 72 (CUDA cores)', shape: { B: 1, T: 2, S: 90, H: 4, Hkv: 2, Dh: 72, Dv: 72 }, positions: [60, 89] },
];

/** Random q, k, v (cache rows past each sequence's last position are NaN) and sinks, held in dtype. */
function hostInputs(c: CheckCase, dtype: FloatDType) {
  const { B, T, S, H, Hkv, Dh, Dv } = c.shape;
  const last = Array.from({ length: B }, (_, b) => Math.max(-1, ...c.positions.slice(b * T, (b + 1) * T)));
  const cache = (D: number) => Float32Array.from({ length: B * S * Hkv * D }, (_, i) => (Math.floor(i / (Hkv * D)) % S > last[Math.floor(i / (S * Hkv * D))]! ? NaN : normal()));
  const [q, qHeld] = stored(Float32Array.from({ length: B * T * H * Dh }, normal), dtype);
  const [k, kHeld] = stored(cache(Dh), dtype);
  const [v, vHeld] = stored(cache(Dv), dtype);
  const sinks = c.sinks ? Float32Array.from({ length: H }, () => 2 * normal()) : undefined;
  const opts = c.window === undefined ? { scale: 1 / Math.sqrt(Dh) } : { scale: 1 / Math.sqrt(Dh), window: c.window };
  /** The CPU reference at these positions. */
  const reference = (positions: readonly number[]) =>
    attentionValues(qHeld, kHeld, vHeld, Int32Array.from(positions), c.shape, opts, sinks);
  return { q, k, v, sinks, reference };
}

function upload(bufs: DeviceBuffers, c: CheckCase, dtype: FloatDType, host: ReturnType<typeof hostInputs>) {
  const { B, T, H, Dv } = c.shape;
  return {
    q: bufs.upload(host.q), k: bufs.upload(host.k), v: bufs.upload(host.v), sinks: host.sinks ? bufs.upload(host.sinks) : 0,
    positions: bufs.upload(Int32Array.from(c.positions)), out: bufs.alloc(B * T * H * Dv * DTYPE_BYTES[dtype]),
  };
}

/** ‖got − want‖ / ‖want‖ and max |got − want| / max(1, max |want|), as the conformance suite's expectClose. */
function errors(got: Float32Array, want: Float32Array): { rel: number; abs: number } {
  let maxD = 0, maxW = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    maxD = Number.isNaN(d) ? Infinity : Math.max(maxD, d);
    maxW = Math.max(maxW, Math.abs(want[i]!));
  }
  return { rel: relError(got, want), abs: maxD / Math.max(1, maxW) };
}

export function runCheck(dev: CudaDevice, c: CheckCase, dtype: FloatDType): boolean {
  const bufs = new DeviceBuffers(dev);
  try {
    const host = hostInputs(c, dtype);
    const ptrs = upload(bufs, c, dtype, host);
    const want = host.reference(c.positions);
    attentionInto(dev, dtype, ptrs.out, ptrs.q, ptrs.k, ptrs.v, c.shape, {
      scale: 1 / Math.sqrt(c.shape.Dh), window: c.window, sinks: ptrs.sinks, positions: ptrs.positions,
    }, c.tuning);
    const { rel, abs } = errors(bufs.download(ptrs.out, want.length, dtype), want);
    const plan = planAttention(dev.info, dtype, c.shape, c.window, ptrs.k % 16 === 0 && ptrs.v % 16 === 0, c.tuning);
    const ok = rel <= TOLERANCE[dtype] && abs <= 3 * TOLERANCE[dtype];
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${dtype.padEnd(4)} ${c.name}: ${plan.kernel}, ${plan.splits} split(s); rel ${rel.toExponential(2)}, abs ${abs.toExponential(2)}`);
    return ok;
  } finally {
    bufs.release();
  }
}

/** One decode call captured in a CUDA graph, replayed with new positions written into the same buffer. */
export function checkGraphReplay(dev: CudaDevice, dtype: FloatDType): boolean {
  const c: CheckCase = { name: 'graph replay', shape: { B: 2, T: 1, S: 700, H: 8, Hkv: 2, Dh: 128, Dv: 128 }, positions: [699, 699] };
  const bufs = new DeviceBuffers(dev);
  try {
    const host = hostInputs(c, dtype); // every cache row valid, so any positions may be replayed
    const ptrs = upload(bufs, c, dtype, host);
    dev.beginCapture();
    let graph;
    try {
      attentionInto(dev, dtype, ptrs.out, ptrs.q, ptrs.k, ptrs.v, c.shape, { scale: 1 / Math.sqrt(128), window: undefined, sinks: 0, positions: ptrs.positions });
    } finally {
      graph = dev.endCapture(true);
    }
    if (!graph) return false;
    let ok = true;
    for (const positions of [[699, 699], [3, 650], [0, 1], [400, 129]]) {
      dev.driver.copyToDevice(ptrs.positions, Int32Array.from(positions), 8, dev.stream);
      dev.launchGraph(graph);
      const want = host.reference(positions);
      const { rel } = errors(bufs.download(ptrs.out, want.length, dtype), want);
      ok &&= rel <= TOLERANCE[dtype];
      console.log(`${rel <= TOLERANCE[dtype] ? 'ok  ' : 'FAIL'} ${dtype.padEnd(4)} graph replay at positions ${positions}: rel ${rel.toExponential(2)}`);
    }
    dev.destroyGraph(graph);
    return ok;
  } finally {
    bufs.release();
  }
}

// ---- timing ---------------------------------------------------------------------------------------------------
interface Model { name: string; H: number; Hkv: number; Dh: number; Dv: number; window?: number; sinks?: boolean }
const MODELS: Model[] = [
  { name: 'Mixtral-8x7B', H: 32, Hkv: 8, Dh: 128, Dv: 128 },
  { name: 'Qwen3-30B-A3B', H: 32, Hkv: 4, Dh: 128, Dv: 128 },
  { name: 'GPT-OSS full', H: 64, Hkv: 8, Dh: 64, Dv: 64, sinks: true },
  { name: 'GPT-OSS sliding', H: 64, Hkv: 8, Dh: 64, Dv: 64, window: 128, sinks: true },
  { name: 'DeepSeek-V3 MLA', H: 128, Hkv: 128, Dh: 192, Dv: 128 },
];
/** Caches larger than this are left out (DeepSeek MLA at B 32, S 32k would be 86 GB). */
const MAX_CACHE_BYTES = 24e9;

export interface Cell {
  kind: 'decode' | 'prefill';
  model: string; B: number; T: number; S: number;
  kernel: string; splits: number;
  /** decode: K/V bytes of the visible rows + q + out; prefill: FLOPs (2 per multiply-add, q·k and p·v). */
  work: number;
  ms: number; floorMs: number; pctOfFloor: number;
  /** --sweep: the fastest split count tried and its time. */
  bestSplits?: number; bestMs?: number;
}

export interface Ceilings { copyGBs: number; gemmTflops: number }

/** Median ms of one call: about 1 ms of calls captured in a graph (no host time between them), timed as a whole. */
const timeCall = (dev: CudaDevice, call: () => void) => timeInGraph(dev, call, { reps: 'adaptive', replays: 7, unit: 'ms' });

async function measureCeilings(backend: CudaBackend): Promise<Ceilings> {
  const dev = backend.device;
  const bytes = 2 ** 30;
  const bufs = new DeviceBuffers(dev);
  const [a, b] = [bufs.alloc(bytes), bufs.alloc(bytes)];
  dev.driver.copyOnDevice(b, a, bytes, dev.stream);
  const copyMs = median(Array.from({ length: 7 }, () => dev.time(() => dev.driver.copyOnDevice(b, a, bytes, dev.stream))));
  bufs.release();
  const n = 8192;
  const [x, w] = [backend.zeros([n, n], 'bf16'), backend.zeros([n, n], 'bf16')];
  backend.linear(x, w).dispose();
  const gemmMs = median(Array.from({ length: 7 }, () => dev.time(() => backend.linear(x, w).dispose())));
  x.dispose();
  w.dispose();
  return { copyGBs: (2 * bytes) / copyMs / 1e6, gemmTflops: (2 * n ** 3) / gemmMs / 1e9 };
}

/** Device buffers for one timed cell: random bf16 q, k, v; every sequence's T queries at positions S - T .. S - 1. */
function cellInputs(bufs: DeviceBuffers, m: Model, shape: AttentionShape) {
  const { B, T, S, H, Hkv, Dh, Dv } = shape;
  const positions = bufs.upload(Int32Array.from({ length: B * T }, (_, i) => S - T + (i % T)));
  const sinks = m.sinks ? bufs.upload(Float32Array.from({ length: H }, (_, h) => h % 3)) : 0;
  return {
    q: bufs.randomBf16(B * T * H * Dh, 1), k: bufs.randomBf16(B * S * Hkv * Dh, 2), v: bufs.randomBf16(B * S * Hkv * Dv, 3),
    out: bufs.alloc(B * T * H * Dv * 2),
    positions, sinks,
  };
}

function timeCell(dev: CudaDevice, m: Model, kind: Cell['kind'], B: number, T: number, S: number, c: Ceilings, sweep: boolean): Cell {
  const shape: AttentionShape = { B, T, S, H: m.H, Hkv: m.Hkv, Dh: m.Dh, Dv: m.Dv };
  const bufs = new DeviceBuffers(dev);
  try {
    const p = cellInputs(bufs, m, shape);
    const run = (tuning?: AttentionTuning) => timeCall(dev, () => attentionInto(dev, 'bf16', p.out, p.q, p.k, p.v, shape, {
      scale: 1 / Math.sqrt(m.Dh), window: m.window, sinks: p.sinks, positions: p.positions,
    }, tuning));
    const plan = planAttention(dev.info, 'bf16', shape, m.window, true);
    const ms = run();
    // Keys query (b, t) at position S - T + t sees, summed: its row count times the (Dh, Dv) work per row.
    let rowKeys = 0;
    for (let t = 0; t < T; t++) rowKeys += Math.min(S - T + t + 1, m.window ?? Infinity);
    const visible = Math.min(S, (m.window ?? S) + T - 1);
    const work = kind === 'decode'
      ? B * (m.Hkv * visible * (m.Dh + m.Dv) + T * m.H * (m.Dh + m.Dv)) * 2
      : 2 * B * m.H * rowKeys * (m.Dh + m.Dv);
    const floorMs = kind === 'decode' ? work / (c.copyGBs * 1e6) : work / (c.gemmTflops * 1e9);
    const cell: Cell = { kind, model: m.name, B, T, S, kernel: plan.kernel, splits: plan.splits, work, ms, floorMs, pctOfFloor: (100 * floorMs) / ms };
    if (sweep && kind === 'decode') {
      const tries = [...new Set([1, plan.splits >> 1, plan.splits * 2, plan.splits * 4].filter((s) => s >= 1 && s <= 256 && s !== plan.splits))];
      [cell.bestSplits, cell.bestMs] = [plan.splits, ms];
      for (const s of tries) {
        const t = run({ splits: s });
        if (t < cell.bestMs!) [cell.bestSplits, cell.bestMs] = [s, t];
      }
    }
    return cell;
  } finally {
    bufs.release();
  }
}

function cellTable(cells: Cell[]): string {
  const header = ['kind', 'model', 'B', 'T', 'S', 'kernel', 'splits', 'MB / GFLOP', 'ms', 'floor ms', '% floor', 'best splits (ms)'];
  return formatTable(header, cells.map((c) => [
    c.kind, c.model, String(c.B), String(c.T), String(c.S), c.kernel, String(c.splits),
    (c.work / (c.kind === 'decode' ? 1e6 : 1e9)).toFixed(1), c.ms.toFixed(4), c.floorMs.toFixed(4), c.pctOfFloor.toFixed(1),
    c.bestSplits === undefined ? '' : `${c.bestSplits} (${c.bestMs!.toFixed(4)})`,
  ]), [0, 1, 5]);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jsonPath = option(args, '--json');
  const quick = args.includes('--quick');
  const backend = CudaBackend.create();
  const dev = backend.device;
  const device = describeDevice(backend);
  console.log(device);

  let failed = 0;
  for (const dtype of ['f32', 'bf16', 'f16'] as FloatDType[]) {
    for (const c of CHECKS) failed += runCheck(dev, c, dtype) ? 0 : 1;
    failed += checkGraphReplay(dev, dtype) ? 0 : 1;
  }
  console.log(failed === 0 ? 'all checks pass' : `${failed} checks FAILED`);
  if (failed > 0 || args.includes('--check-only')) {
    process.exitCode = failed > 0 ? 1 : 0;
    return;
  }

  const ceilings = await measureCeilings(backend);
  console.log(`copy ${ceilings.copyGBs.toFixed(0)} GB/s (read + write), bf16 GEMM 8192³ ${ceilings.gemmTflops.toFixed(0)} TFLOP/s`);
  const cells: Cell[] = [];
  const save = () => jsonPath && writeFileSync(jsonPath, JSON.stringify({ tool: 'moets', device, ceilings, cells }, null, 2));
  const add = (cell: Cell) => {
    cells.push(cell);
    save();
    console.log(`${cell.kind} ${cell.model} B=${cell.B} T=${cell.T} S=${cell.S}: ${cell.ms.toFixed(4)} ms, ${cell.pctOfFloor.toFixed(1)} % of floor`);
  };
  for (const m of MODELS) {
    for (const B of [1, 32]) {
      for (const S of quick ? [4096, 32768] : [512, 4096, 32768]) {
        if (B * S * m.Hkv * (m.Dh + m.Dv) * 2 > MAX_CACHE_BYTES) continue;
        add(timeCell(dev, m, 'decode', B, 1, S, ceilings, args.includes('--sweep')));
      }
    }
    for (const T of quick ? [4096] : [1024, 4096]) add(timeCell(dev, m, 'prefill', 1, T, T, ceilings, false));
    dev.allocator.emptyCache();
  }
  console.log(`\n${cellTable(cells)}`);
  const long = cells.filter((c) => c.kind === 'decode' && c.floorMs >= 0.05);
  console.log(`decode cells with floor ≥ 0.05 ms: ${long.filter((c) => c.pctOfFloor >= 70).length}/${long.length} reach 70 % of the byte floor`);
}

await runBench(import.meta.url, main);

// What the CUDA kernel benchmarks (bench/gemv.ts, grouped-gemm.ts, small-kernels.ts, attention.ts) share: the
// checks' tolerances and relative error, a seeded routing (mulberry32) with its per-expert counts and offsets,
// timing `reps` calls captured in one CUDA graph (no host time between launches), device buffers made for one
// cell and released together, the --name value of the command line, and running a bench file's main.
// The whole-model benchmarks' measuring (clocks, repeats, ceilings, tables) is src/bench/measure.ts.
//
// Legend: T = tokens, E = experts, K = top-k.
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CudaStorage } from '../src/backend/cuda/cuda-backend.ts';
import type { CudaDevice } from '../src/backend/cuda/device.ts';
import { fillRandomInto } from '../src/backend/cuda/kernels/random.ts';
import { median } from '../src/bench/measure.ts';
import { allocHost, type FloatDType } from '../src/core/dtype.ts';
import { MoetsError } from '../src/core/errors.ts';
import type { Tensor } from '../src/core/tensor.ts';
import { widen } from '../src/core/widen.ts';

/** Largest relative error (‖Δ‖ / ‖ref‖) a check accepts, per dtype: the conformance suite's tolerances. */
export const TOLERANCE: Record<FloatDType, number> = { f32: 1e-5, bf16: 1e-2, f16: 5e-3 };

/** ‖got − want‖ / ‖want‖; Infinity when got holds NaN or has another length. */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let d2 = 0, n2 = 0;
  for (let i = 0; i < want.length; i++) {
    d2 += (got[i]! - want[i]!) ** 2;
    n2 += want[i]! ** 2;
  }
  return Number.isNaN(d2) || got.length !== want.length ? Infinity : Math.sqrt(d2) / Math.max(Math.sqrt(n2), 1e-30);
}

/** mulberry32: uniform numbers in [0, 1), the same on every run for a seed (the benches' routing). */
export function uniforms(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rows per expert [E] when each of T tokens picks K distinct experts of E uniformly. */
export function routeCounts(T: number, E: number, K: number, seed: number): number[] {
  const next = uniforms(seed);
  const counts = new Array<number>(E).fill(0);
  for (let t = 0; t < T; t++) {
    const chosen = new Set<number>();
    while (chosen.size < K) chosen.add(Math.floor(next() * E));
    for (const e of chosen) counts[e]!++;
  }
  return counts;
}

/** Offsets [E + 1] of rows per expert [E]: expert e's rows are [offsets[e], offsets[e + 1]). */
export const offsetsOf = (counts: readonly number[]): number[] => counts.reduce((o, n) => [...o, o.at(-1)! + n], [0]);

/** A CUDA tensor's device address. */
export function pointer(t: Tensor): number {
  if (!(t.storage instanceof CudaStorage)) throw new Error(`${t} is not a CUDA tensor`);
  return t.storage.block.pointer;
}

export interface GraphTiming {
  /** Calls captured in the graph; 'adaptive': about 1 ms of them (1 to 50), from one call timed alone. */
  reps: number | 'adaptive';
  /** Timed runs of the graph (after one untimed run); their median is returned. */
  replays: number;
  unit: 'ms' | 'us';
  /** Untimed calls call(0), call(1), … before the capture (compile, warm up); default 1. */
  warmup?: number;
}

/**
 * Median time of one call: calls call(0) … call(reps - 1) captured in one CUDA graph (as a decode step runs them:
 * no host time between launches), the graph's runs timed whole with events and divided by reps.
 */
export function timeInGraph(dev: CudaDevice, call: (i: number) => void, timing: GraphTiming): number {
  for (let i = 0; i < (timing.warmup ?? 1); i++) call(i);
  const reps = timing.reps === 'adaptive' ? Math.max(1, Math.min(50, Math.ceil(1 / Math.max(dev.time(() => call(0)), 1e-3)))) : timing.reps;
  dev.synchronize();
  dev.beginCapture();
  let graph;
  try {
    for (let i = 0; i < reps; i++) call(i);
  } finally {
    graph = dev.endCapture(true);
  }
  if (!graph) throw new Error('graph capture failed');
  dev.launchGraph(graph);
  const scale = timing.unit === 'us' ? 1000 : 1;
  const times = Array.from({ length: timing.replays }, () => (dev.time(() => dev.launchGraph(graph)) * scale) / reps);
  dev.destroyGraph(graph);
  return median(times);
}

/** Device memory for one check or timed cell, released together (after the stream's work is done). */
export class DeviceBuffers {
  private readonly blocks: ReturnType<CudaDevice['alloc']>[] = [];
  constructor(readonly dev: CudaDevice) {}

  alloc(bytes: number): number {
    const b = this.dev.alloc(Math.max(bytes, 16));
    this.blocks.push(b);
    return b.pointer;
  }

  /** n bf16 values drawn from N(0, 1) on the device. */
  randomBf16(n: number, seed: number): number {
    const p = this.alloc(n * 2);
    fillRandomInto(this.dev, 'bf16', p, n, seed, 1);
    return p;
  }

  upload(data: Float32Array | Int32Array | Uint16Array): number {
    const p = this.alloc(data.byteLength);
    this.dev.driver.copyToDevice(p, data, data.byteLength, this.dev.stream);
    return p;
  }

  /** n values of dtype at p, widened to f32. */
  download(p: number, n: number, dtype: FloatDType): Float32Array {
    const host = allocHost(dtype, n);
    this.dev.driver.copyToHost(host, p, host.byteLength, this.dev.stream);
    this.dev.synchronize();
    return widen(host, dtype);
  }

  release(): void {
    this.dev.synchronize();
    for (const b of this.blocks.splice(0)) this.dev.allocator.release(b);
  }
}

/** The value after `name` on the command line (`--json out.json` → out.json), if `name` is there. */
export function option(args: readonly string[], name: string): string | undefined {
  return args.includes(name) ? args[args.indexOf(name) + 1] : undefined;
}

/**
 * Runs a bench file's main when that file is the one node was started with (not when imported); a MoetsError
 * (a usage mistake) becomes one line naming the file and exit code 1.
 */
export async function runBench(moduleUrl: string, main: () => Promise<void>): Promise<void> {
  const file = fileURLToPath(moduleUrl);
  if (!process.argv[1] || file !== resolve(process.argv[1])) return;
  try {
    await main();
  } catch (err) {
    if (!(err instanceof MoetsError)) throw err;
    console.error(`bench/${basename(file)}: ${err.message}`);
    process.exitCode = 1;
  }
}

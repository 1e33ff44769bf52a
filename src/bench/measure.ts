// What the benchmarks measure with: a device clock (CUDA events around the queued work on the GPU, wall time on the
// CPU, whose ops finish before they return), a repeat loop with a time cap, medians, and the hardware ceilings a floor
// is computed from — device-to-device copy bandwidth and the bf16 GEMM rate — measured in the same run.
import os from 'node:os';
import type { Backend } from '../backend/backend.ts';
import { CudaBackend } from '../backend/cuda/cuda-backend.ts';

export interface Ceilings {
  /** Device-to-device copy, bytes read + written per second (GB = 10^9 B). */
  copyGBs: number;
  /** bf16 GEMM 8192³ through the stock library (moe-layer only). */
  gemmTflops?: number;
}

/** Milliseconds of the work `body` queues on the device (returns once that work is done). */
export type Clock = (body: () => void) => number;

export function clockFor(backend: Backend): Clock {
  if (backend instanceof CudaBackend) return (body) => backend.device.time(body);
  return (body) => {
    const start = performance.now();
    body();
    return performance.now() - start;
  };
}

/** One line naming the device: GPU name, arch and SMs; or the CPU model and cores. */
export function describeDevice(backend: Backend): string {
  if (backend instanceof CudaBackend) {
    const info = backend.device.info;
    return `${info.name}, sm_${info.computeCapability}, ${info.multiprocessors} SMs`;
  }
  const cpus = os.cpus();
  return `CPU: ${cpus[0]?.model.trim() ?? 'unknown'}, ${cpus.length} cores, Node ${process.version}`;
}

/** Gives cached device memory back to the driver (between full-size models); nothing to do on the CPU. */
export function releaseCachedMemory(backend: Backend): void {
  if (!(backend instanceof CudaBackend)) return;
  backend.device.synchronize();
  backend.device.allocator.emptyCache();
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

export interface RepeatOptions {
  warmup?: number;
  minRepeats?: number;
  maxRepeats?: number;
  /** Stop adding repeats once this many milliseconds are spent (but see minRepeats). */
  capMs: number;
}

/**
 * Times of `body` (one clock reading each) after `warmup` untimed runs. Repeats go on to maxRepeats or until capMs
 * is spent, but at least minRepeats unless they would pass 3 × capMs (a slow body: one run is enough).
 */
export function timeRepeats(clock: Clock, body: () => void, opts: RepeatOptions): number[] {
  const { warmup = 1, minRepeats = 3, maxRepeats = 25, capMs } = opts;
  for (let i = 0; i < warmup; i++) clock(body);
  const times: number[] = [];
  let spent = 0;
  const more = () => times.length === 0 || (times.length < minRepeats && spent < 3 * capMs) || (times.length < maxRepeats && spent < capMs);
  while (more()) {
    const t = clock(body);
    times.push(t);
    spent += t;
  }
  return times;
}

/** Copy bandwidth: `bytes` of bf16 copied device to device into a tensor made once (copyRows), median of the repeats. */
export function measureCopyGBs(backend: Backend, clock: Clock, bytes: number, capMs: number): number {
  const n = Math.floor(bytes / 2);
  const [source, target] = [backend.zeros([n], 'bf16'), backend.zeros([n], 'bf16')];
  const ms = median(timeRepeats(clock, () => backend.copyRows(target, source, 0), { warmup: 2, minRepeats: 7, capMs }));
  source.dispose();
  target.dispose();
  return (2 * n * 2) / ms / 1e6;
}

/** bf16 GEMM rate of the backend's linear on random size³ operands. */
export function measureGemmTflops(backend: Backend, clock: Clock, size: number, capMs: number): number {
  const a = backend.randomNormal([size, size], 'bf16', 2, 1);
  const b = backend.randomNormal([size, size], 'bf16', 3, 1);
  const ms = median(timeRepeats(clock, () => backend.linear(a, b).dispose(), { warmup: 3, minRepeats: 10, capMs }));
  a.dispose();
  b.dispose();
  return (2 * size ** 3) / ms / 1e9;
}

/** Rows of text as a table: columns padded to their widest cell, those in `left` (the first) left-aligned, the rest right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], left: readonly number[] = [0]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) => r.map((v, i) => (left.includes(i) ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

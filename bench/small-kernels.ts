// The small per-token CUDA kernels of a decode step: rms_norm, route, sortByExpert, gatherRows, scatterAddWeighted.
// First checked through the backends (CudaBackend against CpuBackend, the reference) on odd shapes that reach each
// kernel path (16-byte packs and element accesses, one-launch and many-launch sort and scatter, the register and the
// shared-memory router). Then timed with their launchers on device buffers: `reps` calls captured in one CUDA graph
// (as a decode step runs them), µs per call; decode sizes (T = 1, 8, 32) and a prefill size (T = 4096) with the dims
// of Mixtral-8x7B, Qwen3-30B-A3B and DeepSeek-V3. A graph of 1-element adds gives the per-launch floor.
//   node --import tsx bench/small-kernels.ts [--check-only] [--quick]
//
// Legend: T = tokens, D = hidden size, E = experts, K = top-k, N = routed rows (T·K), H = query heads.
import type { Backend, RouterSpec } from '../src/backend/backend.ts';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.ts';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.ts';
import type { CudaDevice } from '../src/backend/cuda/device.ts';
import { binaryInto } from '../src/backend/cuda/kernels/elementwise.ts';
import { gatherRowsInto, routeInto, scatterAddWeightedInto, sortByExpertInto } from '../src/backend/cuda/kernels/moe.ts';
import { rmsNormInto } from '../src/backend/cuda/kernels/norm-rope.ts';
import { describeDevice, formatTable } from '../src/bench/measure.ts';
import type { FloatDType } from '../src/core/dtype.ts';
import type { Tensor } from '../src/core/tensor.ts';
import { DeviceBuffers, relError, runBench, timeInGraph, TOLERANCE } from './kernel-bench.ts';

// ---- correctness: CudaBackend against CpuBackend ----------------------------------------------------------------
let seed = 7;
function next(): number {
  seed = (seed * 48271) % 2147483647;
  return seed / 2147483647;
}
const int = (n: number) => Math.floor(next() * n);

/** Logits [T, E] whose rows are distinct values spread over [-4, 4) (so f32 rounding cannot reorder a top-k). */
function separatedLogits(T: number, E: number): Float32Array {
  const out = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    const order = Array.from({ length: E }, (_, i) => i).sort(() => next() - 0.5);
    order.forEach((rank, e) => (out[t * E + e] = ((rank - E / 2) * 8) / E));
  }
  return out;
}

/** Expert ids [T, K], K distinct per token among the first `used` of E. */
function randomExperts(T: number, K: number, used: number): Int32Array {
  const ids: number[] = [];
  for (let t = 0; t < T; t++) {
    const row: number[] = [];
    while (row.length < K) {
      const e = int(used);
      if (!row.includes(e)) row.push(e);
    }
    ids.push(...row);
  }
  return Int32Array.from(ids);
}

function differing(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let n = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < Math.min(got.length, want.length); i++) if (got[i] !== want[i]) n++;
  return n;
}

type Both = (b: Backend) => Tensor | Tensor[];

/** Runs `op` on both backends (inputs made by `op` itself on each), compares every output; prints one line. */
async function check(gpu: CudaBackend, cpu: CpuBackend, name: string, dtype: FloatDType, op: Both, exact = false): Promise<boolean> {
  const outs = [op(gpu), op(cpu)].map((o) => (Array.isArray(o) ? o : [o]));
  let worst = 0, ok = true;
  for (let i = 0; i < outs[0]!.length; i++) {
    const [g, c] = [outs[0]![i]!, outs[1]![i]!];
    const [got, want] = [await gpu.read(g), await cpu.read(c)];
    const integer = g.dtype === 'i32';
    const err = integer || exact ? differing(got, want) : relError(got, want);
    worst = Math.max(worst, err);
    ok &&= integer || exact ? err === 0 : err <= TOLERANCE[g.dtype === 'f32' ? 'f32' : dtype];
    gpu.release(g);
  }
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} ${dtype}: ${exact ? `${worst} differ` : `worst ${worst.toExponential(2)}`}`);
  return ok;
}

async function runChecks(gpu: CudaBackend): Promise<number> {
  const cpu = new CpuBackend();
  let failed = 0;
  const count = (ok: boolean) => (failed += ok ? 0 : 1);
  const normal = (b: Backend, shape: number[], dtype: FloatDType, s: number) => b.randomNormal(shape, dtype, s, 1);
  for (const dtype of ['bf16', 'f32', 'f16'] as FloatDType[]) {
    // rms_norm: one long row (block per row), an odd width (element accesses), q/k heads (several rows a block).
    for (const [R, D] of [[1, 4096], [3, 5120], [37, 128], [5, 7], [2, 4095], [1, 7168], [300, 64]]) {
      count(await check(gpu, cpu, `rmsNorm [${R}, ${D}]`, dtype, (b) => b.rmsNorm(normal(b, [R!, D!], dtype, 1), normal(b, [D!], dtype, 2), 1e-6)));
    }
    // gatherRows / scatterAddWeighted on slots from sortByExpert; N ≤ 1024 takes the one-launch scatter.
    for (const [T, K, E, D] of [[1, 2, 8, 4096], [32, 8, 128, 2048], [7, 8, 16, 4095], [600, 8, 128, 256], [5, 3, 6, 33]]) {
      const ids = randomExperts(T!, K!, E!);
      const weights = Float32Array.from({ length: T! * K! }, () => next());
      count(await check(gpu, cpu, `sortByExpert T=${T} K=${K} E=${E}`, dtype, (b) => {
        const { slots, offsets } = b.sortByExpert(b.upload(ids, [T!, K!], 'i32'), E!);
        return [slots, offsets];
      }));
      count(await check(gpu, cpu, `gatherRows T=${T} K=${K} D=${D}`, dtype, (b) => {
        const { slots } = b.sortByExpert(b.upload(ids, [T!, K!], 'i32'), E!);
        return b.gatherRows(normal(b, [T!, D!], dtype, 3), slots, K!);
      }, true));
      count(await check(gpu, cpu, `scatterAddWeighted T=${T} K=${K} D=${D}`, dtype, (b) => {
        const { slots } = b.sortByExpert(b.upload(ids, [T!, K!], 'i32'), E!);
        return b.scatterAddWeighted(normal(b, [T! * K!, D!], dtype, 4), slots, b.upload(weights, [T!, K!], 'f32'), T!);
      }));
    }
  }
  // sortByExpert's three-launch path: many slots, or more experts than the one-block sort holds.
  for (const [T, K, E] of [[4096, 8, 128], [3, 2, 12288], [700, 2, 5000]]) {
    const ids = randomExperts(T!, K!, E!);
    count(await check(gpu, cpu, `sortByExpert T=${T} K=${K} E=${E}`, 'f32', (b) => {
      const { slots, offsets } = b.sortByExpert(b.upload(ids, [T!, K!], 'i32'), E!);
      return [slots, offsets];
    }));
  }
  // route: every scoring; E ≤ 256 keeps a token's values in registers, E = 300 takes the shared-memory kernel.
  const routers: [string, number, RouterSpec, boolean][] = [
    ['Mixtral', 8, { topK: 2, scoring: 'softmax-topk', normalize: true }, false],
    ['Qwen3', 128, { topK: 8, scoring: 'softmax-topk', normalize: true }, false],
    ['DeepSeek-V3', 256, { topK: 8, scoring: 'sigmoid', normalize: true, scale: 2.5, groups: { count: 8, keep: 4 } }, true],
    ['GPT-OSS', 32, { topK: 4, scoring: 'topk-softmax', normalize: false }, false],
    ['DeepSeek-V2', 160, { topK: 6, scoring: 'softmax-topk', normalize: false, scale: 16 }, false],
    ['E=300', 300, { topK: 8, scoring: 'sigmoid', normalize: true, groups: { count: 4, keep: 2 } }, true],
  ];
  for (const [name, E, spec, biased] of routers) {
    for (const T of [1, 33]) {
      const logits = separatedLogits(T, E);
      const bias = Float32Array.from({ length: E }, () => Math.round((next() - 0.5) * 64) / 512);
      for (const dtype of ['bf16', 'f32'] as FloatDType[]) {
        count(await check(gpu, cpu, `route ${name} T=${T} E=${E} K=${spec.topK}`, dtype, (b) => {
          const x = b.cast(b.upload(logits, [T, E], 'f32'), dtype);
          const { weights, experts } = b.route(x, spec, biased ? b.upload(bias, [E], 'f32') : undefined);
          return [experts, weights];
        }));
      }
    }
  }
  return failed;
}

// ---- timing -----------------------------------------------------------------------------------------------------
interface Model { name: string; D: number; E: number; K: number; spec: RouterSpec; qHeads?: number; headDim?: number }
const MODELS: Model[] = [
  { name: 'Mixtral-8x7B', D: 4096, E: 8, K: 2, spec: { topK: 2, scoring: 'softmax-topk', normalize: true } },
  { name: 'Qwen3-30B-A3B', D: 2048, E: 128, K: 8, spec: { topK: 8, scoring: 'softmax-topk', normalize: true }, qHeads: 32, headDim: 128 },
  { name: 'DeepSeek-V3', D: 7168, E: 256, K: 8, spec: { topK: 8, scoring: 'sigmoid', normalize: true, scale: 2.5, groups: { count: 8, keep: 4 } } },
];

/** Median µs of one call: `reps` calls captured in one graph (no host time between them), the graph timed whole. */
const timeCall = (dev: CudaDevice, reps: number, call: () => void) => timeInGraph(dev, call, { reps, replays: 5, unit: 'us' });

interface Row { model: string; op: string; T: number; us: number; bytes: number }

/** Device buffers for one model at T tokens (bf16 activations), filled on the device. */
function timeModel(dev: CudaDevice, m: Model, T: number, reps: number): Row[] {
  const bufs = new DeviceBuffers(dev);
  const alloc = (bytes: number) => bufs.alloc(bytes);
  const random = (n: number, s: number) => bufs.randomBf16(n, s);
  const { D, E, K } = m;
  const N = T * K;
  const x = random(T * D, 1), w = random(D, 2), out = alloc(T * D * 2);
  const logits = random(T * E, 3), bias = alloc(E * 4);
  dev.driver.fillBytes(bias, 0, E * 4, dev.stream);
  const weights = alloc(N * 4), experts = alloc(N * 4), slots = alloc(N * 4), offsets = alloc((E + 1) * 4);
  const rows = alloc(N * D * 2), y = random(N * D, 4);
  const route = () => routeInto(dev, 'bf16', { weights, experts, logits, bias: m.spec.scoring === 'sigmoid' ? bias : 0, T, E }, m.spec);
  route();
  sortByExpertInto(dev, slots, offsets, experts, N, E); // real slots for gather and scatter
  const cells: [string, () => void, number][] = [
    ['rms_norm', () => rmsNormInto(dev, 'bf16', 'bf16', out, x, w, T, D, 1e-6), (2 * T * D + D) * 2],
    ['route', route, T * E * 2 + N * 8],
    ['sortByExpert', () => sortByExpertInto(dev, slots, offsets, experts, N, E), N * 8 + (E + 1) * 4],
    ['gatherRows', () => gatherRowsInto(dev, 'bf16', rows, x, slots, K, N, D), 2 * N * D * 2 + N * 4],
    ['scatterAddWeighted', () => scatterAddWeightedInto(dev, 'bf16', out, y, slots, weights, N, T, K, D), (N + T) * D * 2 + N * 8],
  ];
  if (m.qHeads && m.headDim) {
    const R = T * m.qHeads, q = random(R * m.headDim, 5), qw = random(m.headDim, 6), qOut = alloc(R * m.headDim * 2);
    cells.push([`rms_norm q heads [${m.qHeads}×${m.headDim}]`, () => rmsNormInto(dev, 'bf16', 'bf16', qOut, q, qw, R, m.headDim!, 1e-6), (2 * R + 1) * m.headDim * 2]);
  }
  try {
    return cells.map(([op, call, bytes]) => ({ model: m.name, op, T, us: timeCall(dev, reps, call), bytes }));
  } finally {
    bufs.release();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const gpu = CudaBackend.create();
  const dev = gpu.device;
  console.log(describeDevice(gpu));
  const failed = await runChecks(gpu);
  console.log(failed === 0 ? 'all checks pass' : `${failed} checks FAILED`);
  if (failed > 0 || args.includes('--check-only')) {
    process.exitCode = failed > 0 ? 1 : 0;
    return;
  }
  const one = dev.alloc(16);
  const floor = timeCall(dev, 200, () => binaryInto(dev, 'add', 'bf16', one.pointer, one.pointer, one.pointer, 1));
  dev.allocator.release(one);
  console.log(`launch floor (graph of 1-element adds): ${floor.toFixed(2)} µs per launch`);
  const rows: Row[] = [];
  for (const m of MODELS) {
    for (const T of args.includes('--quick') ? [1, 4096] : [1, 8, 32, 4096]) {
      rows.push(...timeModel(dev, m, T, T >= 1024 ? 20 : 200));
      dev.allocator.emptyCache();
    }
  }
  const header = ['model', 'op', 'T', 'µs / call', 'GB/s'];
  const table = rows.map((r) => [r.model, r.op, String(r.T), r.us.toFixed(2), (r.bytes / r.us / 1e3).toFixed(0)]);
  console.log(`\n${formatTable(header, table, [0, 1])}`);
}

await runBench(import.meta.url, main);

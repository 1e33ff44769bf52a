// The GEMV kernels at decode sizes on the CUDA backend (kernels/gemv.ts, gemv.cuh): dense `linear` for T ≤ 8 rows
// beside cuBLAS, and the experts' grouped GEMV (moe.ts groupedGemvInto) at T = 1 and 8 with random routing, each
// against its byte floor: the weight bytes read ÷ the device-to-device copy rate measured in the same run. Checks
// first, stopping on a mismatch: the dense GEMV (every instance and team size) against cuBLAS and the CPU backend on
// odd shapes, the grouped GEMV against the CPU backend (f32, bf16, f16; empty experts, experts past 8 rows).
// Timing: `reps` launches captured in one CUDA graph, timed with events (no host time between launches); each launch
// reads its own copy of the weights (copies cycle once they pass COLD_BYTES), so no launch finds them in L2 —
// as in a real decode step, where every layer has its own weights. --sweep also times every plan (columns, team size)
// of a few shapes and prints the best beside the planner's pick.
//   node --import tsx bench/gemv.ts [--json FILE] [--sweep] [--check-only]
//
// Legend: T = rows of x (tokens), Kin = input features, Nout = output features, E = experts, K = top-k,
// N = routed rows (T·K), WC = columns a unit, S = warps a team.
import { writeFileSync } from 'node:fs';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.ts';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.ts';
import { denseGemvInto, denseGemvPlan, gemvRows, type DenseGemvArgs, type GemvPlan } from '../src/backend/cuda/kernels/gemv.ts';
import { groupedGemvInto, groupedGemvPlan, groupedLinearPath, type GroupedLinearArgs } from '../src/backend/cuda/kernels/moe.ts';
import { SHAPES } from '../src/bench/moe-layer.ts';
import { clockFor, describeDevice, formatTable, measureCopyGBs, median } from '../src/bench/measure.ts';
import type { Tensor } from '../src/core/tensor.ts';
import { offsetsOf, option, pointer, relError, routeCounts, runBench, timeInGraph, TOLERANCE } from './kernel-bench.ts';

/** Bytes of weights the launches of one graph cycle through: well past the H200's 50 MB L2. */
const COLD_BYTES = 512e6;
/** Dense decode shapes [name, Nout, Kin]: attention projections and LM heads. */
const DENSE: [string, number, number][] = [
  ['Mixtral q/o', 4096, 4096], ['Mixtral k/v', 1024, 4096],
  ['Qwen3 q', 4096, 2048], ['Qwen3 k/v', 512, 2048], ['Qwen3 o', 2048, 4096],
  ['DeepSeek q_a', 1536, 7168], ['DeepSeek q_b', 24576, 1536], ['DeepSeek kv_a', 576, 7168],
  ['DeepSeek kv_b', 32768, 512], ['DeepSeek o', 7168, 16384],
  ['LM head 32000', 32000, 4096], ['LM head 151936', 151936, 2048],
];
const DENSE_TOKENS = [1, 2, 8];
/** The bench times the dense GEMV past the rows `linear` gives it (DENSE_MAX_ROWS), to keep that cut measured. */
const BENCH_MAX_ROWS = 8;
const GROUPED_TOKENS = [1, 8];
/** Shapes whose every plan --sweep times, at T = 1. */
const SWEEP_DENSE = ['Mixtral q/o', 'Mixtral k/v', 'Qwen3 q', 'Qwen3 k/v', 'DeepSeek kv_a', 'LM head 151936'];
const SWEEP_GROUPED = ['Mixtral-8x7B', 'Qwen3-30B-A3B'];

interface Row {
  kind: 'dense' | 'grouped';
  name: string;
  T: number;
  Nout: number;
  Kin: number;
  plan: string;
  ms: number;
  floorMs: number;
  pctOfFloor: number;
  cublasMs?: number;
  /** ‖GEMV − cuBLAS‖ / ‖cuBLAS‖ on the timed shape (dense). */
  relErr?: number;
  /** --sweep: the fastest plan tried and its time. */
  best?: string;
  bestMs?: number;
}

const planName = (p: GemvPlan) => `${p.rows}x${p.columns} S${p.teamWarps} ${p.blockWarps}w×${p.grid}`;

/** All plans of a dense or grouped GEMV worth trying: columns × team sizes, with the planner's grid for each. */
function planTunings(rows: number): Partial<GemvPlan>[] {
  const out: Partial<GemvPlan>[] = [];
  for (const columns of [1, 2, 4] as const) {
    if (columns * 4 < rows) continue;
    for (const teamWarps of [1, 2, 4, 8] as const) out.push({ columns, teamWarps });
  }
  return out;
}

class GemvBench {
  readonly cpu = new CpuBackend();
  readonly dev;
  constructor(readonly cuda: CudaBackend) {
    this.dev = cuda.device;
  }

  /** ms per call: call(0) … call(reps - 1) captured once in a graph, its run timed 5 times (after one untimed run). */
  timeCalls(reps: number, call: (i: number) => void): number {
    return timeInGraph(this.dev, call, { reps, replays: 5, unit: 'ms', warmup: 2 });
  }

  /** Fills t with NaN (all bits set, in every dtype), so an output a kernel fails to write fails its check. */
  poison(t: Tensor): void {
    this.dev.driver.fillBytes(pointer(t), 0xff, t.size * (t.dtype === 'f32' ? 4 : 2), this.dev.stream);
  }

  /** The dense GEMV (every instance and team size on two shapes, the planner's pick on the rest) against cuBLAS and the CPU. */
  async checkDense(): Promise<string[]> {
    const lines: string[] = [];
    const shapes = [[1, 264, 129], [3, 520, 7], [8, 2048, 17], [1, 4096, 17], [2, 8192, 5], [1, 512, 1100], [5, 1032, 65], [7, 8, 300]];
    for (const dtype of ['bf16', 'f16'] as const) {
      for (const [i, [T, Kin, Nout]] of shapes.entries()) {
        const x = this.cuda.randomNormal([T!, Kin!], dtype, 100 + i, 1);
        const w = this.cuda.randomNormal([Nout!, Kin!], dtype, 200 + i, 1 / Math.sqrt(Kin!));
        const bias = this.cuda.randomNormal([Nout!], dtype, 300 + i, 1);
        const host = async (t: Tensor, shape: number[]) => this.cpu.upload((await t.read()) as Float32Array, shape, 'f32');
        const cpuWant = (await this.cpu.linear(await host(x, [T!, Kin!]), await host(w, [Nout!, Kin!]), await host(bias, [Nout!])).read()) as Float32Array;
        const cublas = this.cuda.zeros([T!, Nout!], dtype);
        this.cuda.device.cublas.linear(pointer(cublas), pointer(x), pointer(w), dtype, { M: T!, N: Nout!, K: Kin! }, false);
        const cublasWant = (await cublas.read()) as Float32Array; // without the bias
        const out = this.cuda.zeros([T!, Nout!], dtype);
        const args: DenseGemvArgs = { out: pointer(out), x: pointer(x), w: pointer(w), bias: 0, T: T!, Nout: Nout!, Kin: Kin! };
        const tunings = i === 4 || i === 6 ? [{}, ...planTunings(8).map((t) => ({ ...t, rows: 8 as const })), ...planTunings(gemvRows(T!))] : [{}];
        for (const tuning of tunings) {
          for (const withBias of [false, true]) {
            const plan = denseGemvPlan(this.dev, dtype, { ...args, bias: withBias ? pointer(bias) : 0 }, tuning, BENCH_MAX_ROWS)!;
            this.poison(out);
            denseGemvInto(this.dev, dtype, { ...args, bias: withBias ? pointer(bias) : 0 }, plan);
            const got = (await out.read()) as Float32Array;
            const err = withBias ? relError(got, cpuWant) : relError(got, cublasWant);
            lines.push(`check dense ${dtype} T ${T} Kin ${Kin} Nout ${Nout} ${planName(plan)}${withBias ? ' + bias vs CPU' : ' vs cuBLAS'}: ${err.toExponential(2)}`);
            if (!(err <= TOLERANCE[dtype])) throw new Error(lines.at(-1));
          }
        }
        const auto = (await this.cuda.linear(x, w, bias).read()) as Float32Array; // the op itself
        const err = relError(auto, cpuWant);
        lines.push(`check linear op ${dtype} T ${T} Kin ${Kin} Nout ${Nout} + bias vs CPU: ${err.toExponential(2)}`);
        if (!(err <= TOLERANCE[dtype])) throw new Error(lines.at(-1));
        for (const t of [x, w, bias, cublas, out]) t.dispose();
      }
    }
    return lines;
  }

  /** The grouped GEMV (each plan) against the CPU's groupedLinear: empty experts, one past 8 rows (two passes). */
  async checkGrouped(): Promise<string[]> {
    const lines: string[] = [];
    const shapes = [{ counts: [0, 3, 1, 0, 11, 1, 0], Kin: 264, Nout: 37 }, { counts: [2, 0, 1], Kin: 33, Nout: 9 }, { counts: [1, 1, 1, 1, 1, 1, 1, 1], Kin: 2048, Nout: 70 }];
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      for (const [i, s] of shapes.entries()) {
        const E = s.counts.length;
        const offsets = offsetsOf(s.counts);
        const N = offsets.at(-1)!;
        const x = this.cuda.randomNormal([N, s.Kin], dtype, 400 + i, 1);
        const w = this.cuda.randomNormal([E, s.Nout, s.Kin], dtype, 500 + i, 1 / Math.sqrt(s.Kin));
        const bias = this.cuda.randomNormal([E, s.Nout], 'f32', 600 + i, 1);
        const off = this.cuda.upload(Int32Array.from(offsets), [E + 1], 'i32');
        const host = async (t: Tensor) => this.cpu.upload((await t.read()) as Float32Array, [...t.shape], 'f32');
        const want = (await this.cpu.groupedLinear(await host(x), await host(w), this.cpu.upload(Int32Array.from(offsets), [E + 1], 'i32'), await host(bias)).read()) as Float32Array;
        const out = this.cuda.zeros([N, s.Nout], dtype);
        for (const tuning of [{}, ...planTunings(8)]) {
          const a: GroupedLinearArgs = { out: pointer(out), x: pointer(x), w: pointer(w), bias: pointer(bias), offsets: pointer(off), N, E, Kin: s.Kin, Nout: s.Nout };
          this.poison(out);
          groupedGemvInto(this.dev, dtype, a, tuning);
          const err = relError((await out.read()) as Float32Array, want);
          lines.push(`check grouped ${dtype} counts [${s.counts}] Kin ${s.Kin} Nout ${s.Nout} ${JSON.stringify(tuning)}: ${err.toExponential(2)}`);
          if (!(err <= TOLERANCE[dtype])) throw new Error(lines.at(-1));
        }
        for (const t of [x, w, bias, off, out]) t.dispose();
      }
    }
    return lines;
  }

  /** The GEMV's output against cuBLAS's on the same operands (a timed shape); throws past the bf16 tolerance. */
  async againstCublas(a: DenseGemvArgs, plan: GemvPlan): Promise<number> {
    const [got, want] = [this.cuda.zeros([a.T, a.Nout], 'bf16'), this.cuda.zeros([a.T, a.Nout], 'bf16')];
    denseGemvInto(this.dev, 'bf16', { ...a, out: pointer(got) }, plan);
    this.dev.cublas.linear(pointer(want), a.x, a.w, 'bf16', { M: a.T, N: a.Nout, K: a.Kin }, false);
    const err = relError((await got.read()) as Float32Array, (await want.read()) as Float32Array);
    got.dispose();
    want.dispose();
    if (!(err <= TOLERANCE.bf16)) throw new Error(`dense [${a.Nout}, ${a.Kin}] T=${a.T}: relative error ${err} against cuBLAS`);
    return err;
  }

  /** One dense shape at T rows: the planner's GEMV (and with --sweep every plan) and cuBLAS, all on cold weights. */
  async dense(name: string, Nout: number, Kin: number, tokens: number[], copyGBs: number, sweep: boolean): Promise<Row[]> {
    const bytes = Nout * Kin * 2;
    const copies = Math.max(1, Math.ceil(COLD_BYTES / bytes));
    const w = this.cuda.randomNormal([copies * Nout, Kin], 'bf16', 7, 1 / Math.sqrt(Kin));
    const x = this.cuda.randomNormal([8, Kin], 'bf16', 8, 1);
    const out = this.cuda.zeros([8, Nout], 'bf16');
    const reps = Math.min(400, Math.max(copies, Math.ceil(2e6 / bytes) * 8));
    const rows: Row[] = [];
    for (const T of tokens) {
      const args = (i: number): DenseGemvArgs => ({ out: pointer(out), x: pointer(x), w: pointer(w) + (i % copies) * bytes, bias: 0, T, Nout, Kin });
      const run = (tuning: Partial<GemvPlan>) => {
        const plan = denseGemvPlan(this.dev, 'bf16', args(0), tuning, BENCH_MAX_ROWS)!;
        return { plan, ms: this.timeCalls(reps, (i) => denseGemvInto(this.dev, 'bf16', args(i), plan)) };
      };
      const auto = run({});
      const relErr = await this.againstCublas(args(0), auto.plan);
      const cublasMs = this.timeCalls(reps, (i) =>
        this.dev.cublas.linear(pointer(out), pointer(x), args(i).w, 'bf16', { M: T, N: Nout, K: Kin }, false));
      const floorMs = (bytes + 2 * T * (Kin + Nout)) / (copyGBs * 1e6);
      const row: Row = { kind: 'dense', name, T, Nout, Kin, plan: planName(auto.plan), ms: auto.ms, floorMs, pctOfFloor: (100 * floorMs) / auto.ms, cublasMs, relErr };
      if (sweep && T === 1 && SWEEP_DENSE.includes(name)) {
        const tried = planTunings(auto.plan.rows).map(run);
        const best = tried.reduce((a, b) => (b.ms < a.ms ? b : a), auto);
        [row.best, row.bestMs] = [planName(best.plan), best.ms];
      }
      rows.push(row);
      console.log(`dense ${name} T=${T}: GEMV ${row.ms.toFixed(4)} ms (${row.plan}), ${row.pctOfFloor.toFixed(1)} % of floor; cuBLAS ${cublasMs.toFixed(4)} ms` +
        (row.best ? `; best plan ${row.best} ${row.bestMs!.toFixed(4)} ms` : ''));
    }
    for (const t of [w, x, out]) t.dispose();
    return rows;
  }

  /** The grouped GEMV's rows of the first and last hit experts against cuBLAS on those rows; throws past the tolerance. */
  async groupedAgainstCublas(a: GroupedLinearArgs, offsets: number[]): Promise<number> {
    const out = this.cuda.zeros([a.N, a.Nout], 'bf16');
    groupedGemvInto(this.dev, 'bf16', { ...a, out: pointer(out) });
    const got = (await out.read()) as Float32Array;
    const hit = offsets.slice(1).flatMap((end, e) => (end > offsets[e]! ? [e] : []));
    let worst = 0;
    for (const e of new Set([hit[0]!, hit.at(-1)!])) {
      const [row0, rows] = [offsets[e]!, offsets[e + 1]! - offsets[e]!];
      const want = this.cuda.zeros([rows, a.Nout], 'bf16');
      this.dev.cublas.linear(pointer(want), a.x + row0 * a.Kin * 2, a.w + e * a.Nout * a.Kin * 2, 'bf16', { M: rows, N: a.Nout, K: a.Kin }, false);
      worst = Math.max(worst, relError(got.subarray(row0 * a.Nout, (row0 + rows) * a.Nout), (await want.read()) as Float32Array));
      want.dispose();
    }
    out.dispose();
    if (!(worst <= TOLERANCE.bf16)) throw new Error(`grouped [${a.Nout}, ${a.Kin}] N=${a.N}: relative error ${worst} against cuBLAS`);
    return worst;
  }

  /** One expert GEMM of a model at T tokens: 8 routings cycled, the experts' weights cold (E · Nout · Kin ≫ L2 but for tiny models). */
  async grouped(model: string, gemm: string, E: number, K: number, Nout: number, Kin: number, T: number, copyGBs: number, sweep: boolean): Promise<Row> {
    const routings = Array.from({ length: 8 }, (_, r) => offsetsOf(routeCounts(T, E, K, 31 * T + r)));
    const N = T * K;
    const w = this.cuda.randomNormal([E, Nout, Kin], 'bf16', 9, 1 / Math.sqrt(Kin));
    const x = this.cuda.randomNormal([N, Kin], 'bf16', 10, 1);
    const out = this.cuda.zeros([N, Nout], 'bf16');
    const offsets = routings.map((o) => this.cuda.upload(Int32Array.from(o), [E + 1], 'i32'));
    const args = (r: number): GroupedLinearArgs => ({ out: pointer(out), x: pointer(x), w: pointer(w), bias: 0, offsets: pointer(offsets[r % 8]!), N, E, Kin, Nout });
    const hits = routings.map((o) => o.slice(1).filter((end, e) => end > o[e]!).length);
    const floorMs = (median(hits) * Nout * Kin * 2 + 2 * N * (Kin + Nout)) / (copyGBs * 1e6);
    const reps = Math.min(200, Math.max(16, Math.ceil(1 / floorMs) * 8));
    const run = (tuning: Partial<GemvPlan>) => this.timeCalls(reps, (r) => groupedGemvInto(this.dev, 'bf16', args(r), tuning));
    const relErr = await this.groupedAgainstCublas(args(0), routings[0]!);
    const ms = run({});
    const auto = groupedLinearPath(this.dev, 'bf16', args(0));
    const row: Row = { kind: 'grouped', name: `${model} ${gemm}${auto === 'gemv' ? '' : ` (auto: ${auto})`}`, T, Nout, Kin, plan: planName(groupedGemvPlan(this.dev, 'bf16', args(0), 'groupedLinear').plan), ms, floorMs, pctOfFloor: (100 * floorMs) / ms, relErr };
    if (sweep && T === 1 && SWEEP_GROUPED.includes(model)) {
      const tried = planTunings(8).map((t) => ({ name: `8x${t.columns} S${t.teamWarps}`, ms: run(t) }));
      const best = tried.reduce((a, b) => (b.ms < a.ms ? b : a));
      [row.best, row.bestMs] = [best.name, best.ms];
    }
    console.log(`grouped ${row.name} T=${T}: ${ms.toFixed(4)} ms, ${row.pctOfFloor.toFixed(1)} % of floor (${median(hits)} experts hit)` +
      (row.best ? `; best plan ${row.best} ${row.bestMs!.toFixed(4)} ms` : ''));
    for (const t of [w, x, out, ...offsets]) t.dispose();
    this.dev.synchronize();
    this.dev.allocator.emptyCache();
    return row;
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const sweep = args.includes('--sweep');
  const cuda = CudaBackend.create();
  const bench = new GemvBench(cuda);
  const info = cuda.device.info;
  console.log(describeDevice(cuda));
  const checks = [...(await bench.checkDense()), ...(await bench.checkGrouped())];
  console.log(`${checks.length} checks passed; worst lines:\n${checks.sort((a, b) => Number(b.split(': ').at(-1)) - Number(a.split(': ').at(-1))).slice(0, 4).join('\n')}`);
  if (args.includes('--check-only')) return;
  const copyGBs = measureCopyGBs(cuda, clockFor(cuda), 2 ** 30, 500);
  console.log(`copy ${copyGBs.toFixed(0)} GB/s`);
  const rows: Row[] = [];
  for (const [name, Nout, Kin] of DENSE) rows.push(...(await bench.dense(name, Nout, Kin, DENSE_TOKENS, copyGBs, sweep)));
  cuda.device.synchronize();
  cuda.device.allocator.emptyCache();
  for (const s of SHAPES) {
    for (const [gemm, Nout, Kin] of [['gate|up', 2 * s.F, s.H], ['down', s.H, s.F]] as const) {
      for (const T of GROUPED_TOKENS) rows.push(await bench.grouped(s.model, gemm, s.E, s.K, Nout, Kin, T, copyGBs, sweep));
    }
  }
  const header = ['kind', 'shape', 'T', 'Nout', 'Kin', 'plan', 'ms', 'floor ms', '% floor', 'cuBLAS ms', 'err', 'best plan', 'best ms'];
  console.log(`\n${formatTable(header, rows.map((r) => [
    r.kind, r.name, String(r.T), String(r.Nout), String(r.Kin), r.plan, r.ms.toFixed(4), r.floorMs.toFixed(4), r.pctOfFloor.toFixed(1),
    r.cublasMs?.toFixed(4) ?? '', r.relErr?.toExponential(1) ?? '', r.best ?? '', r.bestMs?.toFixed(4) ?? '',
  ]))}`);
  const t1 = rows.filter((r) => r.T === 1);
  const geo = (xs: number[]) => Math.exp(xs.reduce((a, v) => a + Math.log(v), 0) / Math.max(1, xs.length));
  console.log(`T = 1: geometric mean ${geo(t1.map((r) => r.pctOfFloor)).toFixed(1)} % of floor over ${t1.length} GEMVs; ` +
    `dense GEMV vs cuBLAS ${geo(rows.filter((r) => r.cublasMs).map((r) => r.cublasMs! / r.ms)).toFixed(2)}× (all T)`);
  const jsonPath = option(args, '--json');
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ tool: 'moets gemv', device: info.name, copyGBs, rows }, null, 2));
}

await runBench(import.meta.url, main);

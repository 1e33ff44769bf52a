// The experts' grouped GEMM alone on the CUDA backend, per kernel path (moe.ts groupedLinearPath): the MoE
// benchmark's shapes in bf16 (each model's gate|up GEMM x [N, H] · gateUp[e] [2F, H]ᵀ and down GEMM
// [N, F] · down[e] [H, F]ᵀ at T = 64, 512, 4096, 16384 tokens; N = T·K rows, each token sent to K distinct experts
// drawn uniformly), timed with CUDA events against the floor max(FLOPs ÷ cuBLAS bf16 rate, bytes ÷ copy rate)
// measured in the same run. Checks first, and stops on a mismatch: every path against the CPU backend on odd shapes
// (bf16, f16), then on every timed shape the first and last hit experts' rows against cuBLAS `linear`. The gate|up
// rows also time the SwiGLU-fused kernel (groupedSwiGluInto) against the GEMM followed by the siluMul op.
// On sm_90 the Hopper wgmma paths (wgmma256, wgmma128) are checked and timed too.
//   node --import tsx bench/grouped-gemm.ts [--json FILE] [--models Mixtral-8x7B,...] [--tokens 512,4096]
//     [--paths mma128,wgmma256]   (the paths timed; default: every tensor-core path this GPU runs)
//     [--check gemv,wgmma256]     (the paths checked against the CPU; default: all; the GEMV is timed only if checked)
//
// Legend: T = tokens, N = routed rows, E = experts, K = top-k, H = hidden, F = expert FFN, Kin/Nout = GEMM sizes.
import { writeFileSync } from 'node:fs';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.ts';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.ts';
import {
  groupedLinearInto, groupedLinearPath, groupedSwiGluInto, type GroupedLinearArgs, type GroupedLinearPath,
} from '../src/backend/cuda/kernels/moe.ts';
import { SHAPES } from '../src/bench/moe-layer.ts';
import { clockFor, describeDevice, formatTable, measureCopyGBs, measureGemmTflops, median, timeRepeats } from '../src/bench/measure.ts';
import type { FloatDType } from '../src/core/dtype.ts';
import { fail } from '../src/core/errors.ts';
import type { Tensor } from '../src/core/tensor.ts';
import { offsetsOf, option, pointer, relError, routeCounts, runBench, TOLERANCE } from './kernel-bench.ts';

/** Prefill cells of the MoE benchmark, and T = 64, where the GEMV / tensor-core cut falls for most models. */
const PREFILL_TOKENS = [64, 512, 4096, 16384];
/** The tensor-core paths this GPU runs (wgmma: sm_90 only); all are checked, and timed on every shape. */
function tensorCorePaths(computeCapability: number): GroupedLinearPath[] {
  return ['mma64', 'mma128', ...(computeCapability === 90 ? (['wgmma128', 'wgmma256'] as const) : [])];
}
/** The GEMV is timed too where experts average ≤ GEMV_COMPARE_ROWS rows (to place the cut). */
const GEMV_COMPARE_ROWS = 32;

interface Row {
  model: string;
  gemm: 'gate|up' | 'down';
  tokens: number;
  N: number;
  E: number;
  Kin: number;
  Nout: number;
  /** A kernel path; `<path>+silu`: gate|up with SwiGLU fused; `<path>, siluMul`: the GEMM then the siluMul op. */
  path: string;
  auto: boolean;
  ms: number;
  tflops: number;
  floorMs: number;
  pctOfFloor: number;
  relError: number;
}

class GroupedBench {
  readonly cpu = new CpuBackend();
  constructor(readonly cuda: CudaBackend) {}

  /** groupedLinear through `path` into a new [N, Nout] tensor. */
  run(path: GroupedLinearPath, dtype: FloatDType, x: Tensor, w: Tensor, offsets: Tensor, bias?: Tensor): Tensor {
    const [E, Nout, Kin] = [w.dim(0), w.dim(1), w.dim(2)];
    const out = this.cuda.zeros([x.dim(0), Nout], dtype);
    groupedLinearInto(this.cuda.device, dtype, this.args(out, x, w, offsets, E, Kin, Nout, bias), path);
    return out;
  }

  args(out: Tensor, x: Tensor, w: Tensor, offsets: Tensor, E: number, Kin: number, Nout: number, bias?: Tensor): GroupedLinearArgs {
    return { out: pointer(out), x: pointer(x), w: pointer(w), bias: bias ? pointer(bias) : 0, offsets: pointer(offsets), N: x.dim(0), E, Kin, Nout };
  }

  /** Every path against the CPU backend (f32 arithmetic on the same stored values) on odd shapes; throws on a mismatch. */
  async checkAgainstCpu(paths: GroupedLinearPath[]): Promise<string[]> {
    const lines: string[] = [];
    const shapes = [
      { counts: [0, 70, 1, 0, 64, 9], Kin: 200, Nout: 136 },
      { counts: [300, 0, 129], Kin: 72, Nout: 17 },
      { counts: [1100, 3], Kin: 264, Nout: 200 },
      // 128-row tiles: 11 tiles of one expert (two groups), a last tile of 20 rows (the second warpgroup's rows all
      // past the end), Kin not a multiple of the 64-wide k step, Nout past two 256-column tiles, an empty expert.
      { counts: [1300, 65, 0, 148], Kin: 392, Nout: 600 },
      // 170 tiles of 128 × 256 (more than one an SM), of 2 k steps, then of 1 (fewer than the ring's stages).
      { counts: [3000, 1, 0, 700, 37], Kin: 72, Nout: 1100 },
      { counts: [3000, 1, 0, 700, 37], Kin: 8, Nout: 1100 },
    ];
    for (const dtype of ['bf16', 'f16'] as const) {
      for (const [i, s] of shapes.entries()) {
        const E = s.counts.length;
        const offsets = offsetsOf(s.counts);
        const N = offsets.at(-1)!;
        const x = this.cuda.randomNormal([N, s.Kin], dtype, 1000 + i, 1);
        const w = this.cuda.randomNormal([E, s.Nout, s.Kin], dtype, 2000 + i, 0.2);
        const bias = this.cuda.randomNormal([E, s.Nout], 'f32', 3000 + i, 1);
        const off = this.cuda.upload(Int32Array.from(offsets), [E + 1], 'i32');
        const host = async (t: Tensor) => this.cpu.upload((await t.read()) as Float32Array, [...t.shape], 'f32');
        const want = (await this.cpu.groupedLinear(await host(x), await host(w), this.cpu.upload(Int32Array.from(offsets), [E + 1], 'i32'), await host(bias)).read()) as Float32Array;
        for (const path of paths) {
          const y = this.run(path, dtype, x, w, off, bias);
          const err = relError((await y.read()) as Float32Array, want);
          y.dispose();
          lines.push(`check vs CPU ${dtype} counts [${s.counts}] Kin ${s.Kin} Nout ${s.Nout} ${path}: relative error ${err.toExponential(2)}`);
          if (!(err <= TOLERANCE[dtype])) throw new Error(lines.at(-1));
        }
        const fusable = paths.filter((p) => p !== 'gemv' && p !== 'tiled');
        if (s.Nout % 2 === 0) lines.push(...(await this.checkSwiGlu(dtype, x, w, off, bias, want, s.counts, fusable)));
        for (const t of [x, w, bias, off]) t.dispose();
      }
    }
    return lines;
  }

  /** The fused SwiGLU kernels (plain and clamped, both tile heights) against the CPU's siluMul of `linear`. */
  async checkSwiGlu(
    dtype: FloatDType, x: Tensor, w: Tensor, off: Tensor, bias: Tensor, linear: Float32Array, counts: number[], tensorCore: GroupedLinearPath[],
  ): Promise<string[]> {
    const lines: string[] = [];
    const [E, Nout, Kin] = [w.dim(0), w.dim(1), w.dim(2)];
    const gateUp = this.cpu.upload(linear, [x.dim(0), Nout], 'f32');
    for (const clamped of [undefined, { alpha: 1.702, limit: 7 }]) {
      const want = (await this.cpu.siluMul(gateUp, clamped).read()) as Float32Array;
      for (const path of tensorCore) {
        const out = this.cuda.zeros([x.dim(0), Nout / 2], dtype);
        groupedSwiGluInto(this.cuda.device, dtype, this.args(out, x, w, off, E, Kin, Nout, bias), clamped, path);
        const err = relError((await out.read()) as Float32Array, want);
        out.dispose();
        lines.push(`check vs CPU ${dtype} counts [${counts}] Kin ${Kin} F ${Nout / 2} ${path}+${clamped ? 'clamped' : 'silu'}: relative error ${err.toExponential(2)}`);
        if (!(err <= TOLERANCE[dtype])) throw new Error(lines.at(-1));
      }
    }
    return lines;
  }

  /** The rows of the first and last hit experts of `y` against cuBLAS linear on the same rows; the worse error. */
  async checkAgainstCublas(y: Tensor, x: Tensor, w: Tensor, counts: number[]): Promise<number> {
    const [E, Nout, Kin] = [w.dim(0), w.dim(1), w.dim(2)];
    const offsets = offsetsOf(counts);
    const hit = counts.flatMap((c, e) => (c > 0 ? [e] : []));
    let worst = 0;
    for (const e of new Set([hit[0]!, hit.at(-1)!])) {
      const xs = this.cuda.sliceRows(x, offsets[e]!, counts[e]!);
      const we = this.cuda.sliceRows(w.reshape([E * Nout, Kin]), e * Nout, Nout);
      const want = this.cuda.linear(xs, we);
      const got = this.cuda.sliceRows(y, offsets[e]!, counts[e]!);
      worst = Math.max(worst, relError((await got.read()) as Float32Array, (await want.read()) as Float32Array));
      for (const t of [xs, we, want, got]) t.dispose();
    }
    return worst;
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const models = option(args, '--models')?.split(',') ?? SHAPES.map((s) => s.model);
  const tokens = option(args, '--tokens')?.split(',').map(Number) ?? PREFILL_TOKENS;
  const cuda = CudaBackend.create();
  const bench = new GroupedBench(cuda);
  const clock = clockFor(cuda);
  const info = cuda.device.info;
  console.log(describeDevice(cuda));
  const tensorCore = tensorCorePaths(info.computeCapability);
  const every: GroupedLinearPath[] = ['gemv', 'tiled', ...tensorCore];
  const pathsOption = (name: string, among: GroupedLinearPath[]) =>
    option(args, name)?.split(',').map((p) => among.find((q) => q === p) ?? fail('usage', `${name}: no path ${p} here (${among})`));
  const timed = pathsOption('--paths', tensorCore) ?? tensorCore;
  const checked = pathsOption('--check', every) ?? every;
  if (timed.some((p) => !checked.includes(p))) fail('usage', `every timed path must be checked: --paths ${timed} --check ${checked}`);
  for (const line of await bench.checkAgainstCpu(checked)) console.log(line);
  const gemmTflops = measureGemmTflops(cuda, clock, 8192, 1000);
  const copyGBs = measureCopyGBs(cuda, clock, 2 ** 30, 1000);
  console.log(`cuBLAS bf16 8192³: ${gemmTflops.toFixed(0)} TFLOP/s; copy ${copyGBs.toFixed(0)} GB/s`);
  const rows: Row[] = [];
  for (const s of SHAPES.filter((m) => models.includes(m.model))) {
    for (const [gemm, Kin, Nout] of [['gate|up', s.H, 2 * s.F], ['down', s.F, s.H]] as const) {
      const w = cuda.randomNormal([s.E, Nout, Kin], 'bf16', 7, 1 / Math.sqrt(Kin));
      for (const T of tokens) {
        const counts = routeCounts(T, s.E, s.K, 11 + T);
        const N = T * s.K;
        const x = cuda.randomNormal([N, Kin], 'bf16', 8 + T, 1);
        const offsets = cuda.upload(Int32Array.from(offsetsOf(counts)), [s.E + 1], 'i32');
        const out = cuda.zeros([N, Nout], 'bf16');
        const a = bench.args(out, x, w, offsets, s.E, Kin, Nout);
        const auto = groupedLinearPath(cuda.device, 'bf16', a);
        const paths = [...timed, ...(N <= GEMV_COMPARE_ROWS * s.E && checked.includes('gemv') ? ['gemv' as const] : [])];
        const hit = counts.filter((c) => c > 0).length;
        const flops = 2 * N * Kin * Nout;
        const bytes = 2 * (hit * Nout * Kin + N * Kin + N * Nout);
        const floorMs = Math.max(flops / (gemmTflops * 1e9), bytes / (copyGBs * 1e6));
        for (const path of paths) {
          groupedLinearInto(cuda.device, 'bf16', a, path);
          const err = await bench.checkAgainstCublas(out, x, w, counts);
          if (!(err <= TOLERANCE.bf16)) throw new Error(`${s.model} ${gemm} T=${T} ${path}: relative error ${err} against cuBLAS`);
          const ms = median(timeRepeats(clock, () => groupedLinearInto(cuda.device, 'bf16', a, path), { warmup: 1, minRepeats: 3, capMs: 200 }));
          const row: Row = {
            model: s.model, gemm, tokens: T, N, E: s.E, Kin, Nout, path, auto: path === auto, ms,
            tflops: flops / ms / 1e9, floorMs, pctOfFloor: (100 * floorMs) / ms, relError: err,
          };
          rows.push(row);
          console.log(`${s.model} ${gemm} T=${T} ${path}${row.auto ? ' (auto)' : ''}: ${ms.toFixed(3)} ms, ${row.tflops.toFixed(0)} TFLOP/s, ${row.pctOfFloor.toFixed(1)} % of floor, error ${err.toExponential(1)}`);
        }
        if (gemm === 'gate|up') {
          // SwiGLU fused into each timed path, against the auto path's GEMM followed by the siluMul op.
          const hidden = cuda.zeros([N, Nout / 2], 'bf16');
          const fused = bench.args(hidden, x, w, offsets, s.E, Kin, Nout);
          const variants = timed.map((p): [string, () => void] => [`${p}+silu`, () => groupedSwiGluInto(cuda.device, 'bf16', fused, undefined, p)]);
          if (timed.includes(auto)) {
            variants.push([`${auto}, siluMul`, () => { groupedLinearInto(cuda.device, 'bf16', a, auto); cuda.siluMul(out).dispose(); }]);
          }
          for (const [path, body] of variants) {
            const ms = median(timeRepeats(clock, body, { warmup: 1, minRepeats: 3, capMs: 200 }));
            rows.push({
              model: s.model, gemm, tokens: T, N, E: s.E, Kin, Nout, path, auto: false, ms,
              tflops: flops / ms / 1e9, floorMs, pctOfFloor: (100 * floorMs) / ms, relError: 0,
            });
            console.log(`${s.model} ${gemm} T=${T} ${path}: ${ms.toFixed(3)} ms`);
          }
          hidden.dispose();
        }
        for (const t of [x, offsets, out]) t.dispose();
      }
      w.dispose();
      cuda.device.synchronize();
      cuda.device.allocator.emptyCache();
    }
  }
  const header = ['model', 'gemm', 'T', 'N/E', 'Kin', 'Nout', 'path', 'ms', 'TFLOP/s', 'floor ms', '% floor'];
  console.log(`\n${formatTable(header, rows.map((r) => [
    r.model, r.gemm, String(r.tokens), (r.N / r.E).toFixed(0), String(r.Kin), String(r.Nout), r.path + (r.auto ? '*' : ''),
    r.ms.toFixed(3), r.tflops.toFixed(0), r.floorMs.toFixed(3), r.pctOfFloor.toFixed(1),
  ]))}`);
  const autoRows = rows.filter((r) => r.auto);
  const geo = Math.exp(autoRows.reduce((acc, r) => acc + Math.log(r.pctOfFloor), 0) / Math.max(1, autoRows.length));
  console.log(`* = the path groupedLinear picks; its geometric mean: ${geo.toFixed(1)} % of floor over ${autoRows.length} GEMMs`);
  const jsonPath = option(args, '--json');
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ tool: 'moets grouped-gemm', device: info.name, gemmTflops, copyGBs, rows }, null, 2));
}

await runBench(import.meta.url, main);

// Times the CPU `linear` kernels on the shapes a small MoE model runs, in GFLOP/s (2·M·N·K per call).
// Run: node --import tsx bench/cpu-matmul.ts [--quick]
// Compares the naive triple loop the CPU backend started with against the shipped register-blocked kernel
// (f32 weights, and bf16 weights widened tile by tile). Each (shape, kernel) takes the best of several rounds,
// interleaved, so a busy machine shows less; record the results in bench/NOTES.md.
//
// Shapes are [M, K, N]: x [M, K] · w [N, K]ᵀ. M = tokens in the call (1 = decode), K = inputs, N = outputs.
import { execSync } from 'node:child_process';
import { cpus } from 'node:os';
import { f32ToBf16 } from '../src/core/dtype.ts';
import { matmulInto, type WeightRows } from '../src/backend/cpu/matmul.ts';

type Kernel = (out: Float32Array, x: Float32Array, w: WeightRows, M: number, N: number, K: number) => void;

/** The CPU backend's first kernel: one dot product per output, widening nothing (f32 only). */
function naive(out: Float32Array, x: Float32Array, w: WeightRows, M: number, N: number, K: number): void {
  const wf = w.data as Float32Array;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[m * K + k]! * wf[n * K + k]!;
      out[m * N + n] = acc;
    }
  }
}

const blocked: Kernel = (out, x, w, M, N, K) => matmulInto(out, x, w, 0, M, N, K);

const SHAPES: [number, number, number][] = [
  [1, 192, 32000], [1, 192, 512], [1, 512, 192], [1, 192, 1536],
  [16, 192, 512], [128, 192, 1024], [512, 192, 2048], [512, 1024, 192], [64, 192, 32000],
];

function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) - 0.5);
}

function timeShape([M, K, N]: [number, number, number], rounds: number): string {
  const x = randomValues(M * K, 1);
  const wf = randomValues(N * K, 2);
  const wb = Uint16Array.from(wf, f32ToBf16);
  const kernels: [string, Kernel, WeightRows][] = [
    ['naive f32', naive, { data: wf, dtype: 'f32', offset: 0 }],
    ['blocked f32', blocked, { data: wf, dtype: 'f32', offset: 0 }],
    ['blocked bf16-w', blocked, { data: wb, dtype: 'bf16', offset: 0 }],
  ];
  const flop = 2 * M * N * K;
  const calls = Math.max(1, Math.ceil(3e7 / flop));
  const out = new Float32Array(M * N);
  const best = kernels.map(() => Infinity);
  for (const [, kernel, w] of kernels) kernel(out, x, w, M, N, K); // warm up: let the JIT compile first
  for (let r = 0; r < rounds; r++) {
    kernels.forEach(([, kernel, w], i) => {
      const start = performance.now();
      for (let c = 0; c < calls; c++) kernel(out, x, w, M, N, K);
      best[i] = Math.min(best[i]!, (performance.now() - start) / calls);
    });
  }
  const cells = kernels.map(([name], i) => `${name} ${(flop / best[i]! / 1e6).toFixed(2)}`);
  return `M=${M} K=${K} N=${N}`.padEnd(22) + cells.join(' | ') + `   (blocked f32 ${best[1]!.toFixed(3)} ms/call)`;
}

const model = cpus()[0]?.model ?? 'unknown';
let nproc = String(cpus().length);
try { nproc = execSync('nproc').toString().trim(); } catch { /* nproc missing: os.cpus() count stands */ }
console.log(`node ${process.version}, nproc ${nproc}, ${model}`);
console.log('GFLOP/s, best of interleaved rounds:');
const rounds = process.argv.includes('--quick') ? 3 : 15;
for (const shape of SHAPES) console.log(timeShape(shape, rounds));

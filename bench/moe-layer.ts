// The MoE-layer benchmark on the CUDA backend: bf16, random weights filled on the device, real models' expert
// shapes, one MoeLayer.forward per timing (CUDA events, median after warm-up). Each cell is set against its floor,
// max(selected experts' weight bytes + activation bytes ÷ measured copy bandwidth, FLOPs ÷ measured bf16 GEMM rate),
// both ceilings measured in the same run. Prints a table last; --json FILE writes the cells (compare.ts reads them
// beside scripts/peer_moe_layer.py's).
//   node --import tsx bench/moe-layer.ts [--json FILE] [--quick] [--models Mixtral-8x7B,DeepSeek-V3] [--tokens 1,4096]
// --quick: tokens 1, 64, 4096 on Mixtral-8x7B and Qwen3-30B-A3B; --models/--tokens pick cells (override --quick's).
//
// Legend: H = hidden, F = expert FFN size, E = experts, K = top-k, T = tokens.
// Weights: router [E, H]; gateUp [E, 2F, H]; down [E, H, F]. x: [T, H].
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RouterSpec } from '../src/backend/backend.ts';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.ts';
import { fillRandom } from '../src/backend/cuda/kernels/random.ts';
import { getBackend } from '../src/backend/registry.ts';
import { MoetsError } from '../src/core/errors.ts';
import type { Shape, Tensor } from '../src/core/tensor.ts';
import { MoeLayer, type MoeWeights } from '../src/moe/moe-layer.ts';

export interface MoeShape {
  model: string;
  H: number;
  F: number;
  E: number;
  K: number;
  router: RouterSpec;
}

/** The models' routed-expert shapes and router variants (GPT-OSS without its expert biases and clamped GLU). */
export const SHAPES: MoeShape[] = [
  { model: 'Mixtral-8x7B', H: 4096, F: 14336, E: 8, K: 2, router: { topK: 2, scoring: 'softmax-topk', normalize: true } },
  { model: 'Qwen3-30B-A3B', H: 2048, F: 768, E: 128, K: 8, router: { topK: 8, scoring: 'softmax-topk', normalize: true } },
  {
    model: 'DeepSeek-V3', H: 7168, F: 2048, E: 256, K: 8,
    router: { topK: 8, scoring: 'sigmoid', normalize: true, scale: 2.5, groups: { count: 8, keep: 4 } },
  },
  { model: 'OLMoE-1B-7B', H: 2048, F: 1024, E: 64, K: 8, router: { topK: 8, scoring: 'softmax-topk', normalize: false } },
  { model: 'GPT-OSS-20B', H: 2880, F: 2880, E: 32, K: 4, router: { topK: 4, scoring: 'topk-softmax', normalize: false } },
];
const TOKENS = [1, 8, 64, 512, 4096, 16384];
const QUICK_TOKENS = [1, 64, 4096];
const QUICK_MODELS = ['Mixtral-8x7B', 'Qwen3-30B-A3B'];
const BF16_BYTES = 2;

export interface Cell {
  model: string;
  H: number;
  F: number;
  E: number;
  K: number;
  tokens: number;
  /** Median milliseconds of one forward. */
  ms: number;
  repeats: number;
  /** Experts the routing of this input actually chose. */
  distinctExperts: number;
  /** Weight bytes of the chosen experts plus the router; activation bytes: x read + output written. */
  weightBytes: number;
  activationBytes: number;
  flops: number;
  floorMs: number;
  floorKind: 'memory' | 'compute';
  pctOfFloor: number;
}

export interface Ceilings {
  /** Device-to-device copy, bytes read + written per second. */
  copyGBs: number;
  /** bf16 GEMM 8192³ through the stock library. */
  gemmTflops: number;
}

export interface BenchFile {
  tool: string;
  device: string;
  ceilings: Ceilings;
  cells: Cell[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The floor of one cell (see the top of this file); shared with compare.ts. */
export function floorOf(s: MoeShape | Cell, tokens: number, distinctExperts: number, c: Ceilings) {
  const weightBytes = (distinctExperts * 3 * s.H * s.F + s.E * s.H) * BF16_BYTES;
  const activationBytes = 2 * tokens * s.H * BF16_BYTES;
  const flops = 2 * 3 * s.H * s.F * tokens * s.K;
  const memoryMs = (weightBytes + activationBytes) / (c.copyGBs * 1e6);
  const computeMs = flops / (c.gemmTflops * 1e9);
  return { weightBytes, activationBytes, flops, floorMs: Math.max(memoryMs, computeMs), floorKind: memoryMs >= computeMs ? 'memory' as const : 'compute' as const };
}

const MASK64 = (1n << 64n) - 1n;
function splitmix64(z: bigint): bigint {
  z = (z + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}
/** random.cu's hashed_normal in float64. */
function hashedNormal(seed: bigint, i: bigint): number {
  const h = splitmix64(splitmix64(seed) ^ i);
  const u1 = (Number(h >> 40n) + 1) / 16777217;
  const u2 = Number(h & 0xffffffn) / 16777216;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

class Bench {
  constructor(readonly cuda: CudaBackend, readonly capMs: number) {}

  random(shape: Shape, dtype: 'bf16' | 'f32', seed: number, std: number): Tensor {
    const t = this.cuda.zeros(shape, dtype);
    fillRandom(this.cuda.device, t, seed, std);
    return t;
  }

  /**
   * Times of `body` (events around each run) after `warmup` runs. Repeats go on to 25 or until capMs is spent, but
   * at least `minRepeats` unless they would pass 3 × capMs (a slow cell: one run is enough).
   */
  async timeMedian(body: () => Promise<void> | void, warmup = 1, minRepeats = 3): Promise<number[]> {
    const dev = this.cuda.device;
    for (let i = 0; i < warmup; i++) await body();
    const times: number[] = [];
    let spent = 0;
    const more = () => times.length === 0 || (times.length < minRepeats && spent < 3 * this.capMs) || (times.length < 25 && spent < this.capMs);
    while (more()) {
      let pending: Promise<void> | void = undefined;
      const t = dev.time(() => { pending = body(); });
      await pending;
      times.push(t);
      spent += t;
    }
    return times;
  }

  /**
   * Checks fillRandom on the device against the same hash computed here (random.cu's hashed_normal, in float64):
   * 4,096 values of an f32 fill (to 2e-3: __logf near 1 and f32 u1 lose digits), and that the bf16 fill of the same stream is their rounding. Throws on a mismatch.
   */
  async checkRandomFill(): Promise<void> {
    const n = 4096;
    const [f32, bf16] = [this.random([n], 'f32', 77, 2), this.random([n], 'bf16', 77, 2)];
    const [got, rounded] = [await f32.read(), await bf16.read()];
    f32.dispose();
    bf16.dispose();
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < n; i++) {
      const want = 2 * hashedNormal(77n, BigInt(i));
      const g = got[i]!;
      if (!(Math.abs(g - want) <= 2e-3 + 1e-4 * Math.abs(want)) || !(Math.abs(rounded[i]! - g) <= Math.abs(g) / 128)) {
        throw new Error(`fillRandom check: element ${i} is ${g} (bf16 ${rounded[i]}), expected ${want}`);
      }
      sum += g;
      sumSq += g * g;
    }
    const std = Math.sqrt(sumSq / n - (sum / n) ** 2);
    if (Math.abs(sum / n) > 0.15 || Math.abs(std - 2) > 0.15) throw new Error(`fillRandom check: mean ${sum / n}, std ${std} (want 0, 2)`);
  }

  async ceilings(): Promise<Ceilings> {
    const n = 2 ** 29; // 1 GiB of bf16
    const big = this.random([n], 'bf16', 1, 1);
    const copyMs = median(await this.timeMedian(() => this.cuda.cast(big, 'bf16').dispose(), 2, 7));
    big.dispose();
    const size = 8192;
    const a = this.random([size, size], 'bf16', 2, 1);
    const b = this.random([size, size], 'bf16', 3, 1);
    const gemmMs = median(await this.timeMedian(() => this.cuda.linear(a, b).dispose(), 3, 10));
    a.dispose();
    b.dispose();
    return { copyGBs: (2 * n * BF16_BYTES) / copyMs / 1e6, gemmTflops: (2 * size ** 3) / gemmMs / 1e9 };
  }

  weights(s: MoeShape): MoeWeights {
    const w: MoeWeights = {
      router: this.random([s.E, s.H], 'bf16', 10, 1 / Math.sqrt(s.H)),
      gateUp: this.random([s.E, 2 * s.F, s.H], 'bf16', 11, 1 / Math.sqrt(s.H)),
      down: this.random([s.E, s.H, s.F], 'bf16', 12, 1 / Math.sqrt(s.F)),
    };
    if (s.router.scoring === 'sigmoid') w.selectionBias = this.random([s.E], 'f32', 13, 0.01);
    return w;
  }

  /** Experts the routing of x chooses, counted on the host (outside the timing). */
  async distinctExperts(x: Tensor, w: MoeWeights, s: MoeShape): Promise<number> {
    const logits = this.cuda.linear(x, w.router);
    const { weights, experts } = this.cuda.route(logits, s.router, w.selectionBias);
    const ids = await experts.read();
    for (const t of [logits, weights, experts]) t.dispose();
    return new Set(ids).size;
  }

  async cell(s: MoeShape, layer: MoeLayer, w: MoeWeights, tokens: number, c: Ceilings): Promise<Cell> {
    const x = this.random([tokens, s.H], 'bf16', 100 + tokens, 1);
    const distinctExperts = await this.distinctExperts(x, w, s);
    const times = await this.timeMedian(async () => (await layer.forward(x)).dispose(), 1);
    x.dispose();
    const ms = median(times);
    const floor = floorOf(s, tokens, distinctExperts, c);
    const { model, H, F, E, K } = s;
    return { model, H, F, E, K, tokens, ms, repeats: times.length, distinctExperts, ...floor, pctOfFloor: (100 * floor.floorMs) / ms };
  }
}

function layerFor(cuda: CudaBackend, s: MoeShape, w: MoeWeights): MoeLayer {
  return new MoeLayer(cuda, {
    kind: 'moe', numExperts: s.E, expertIntermediateSize: s.F, router: s.router, selectionBias: s.router.scoring === 'sigmoid',
  }, w);
}

/** The table, one row per cell; `extra` adds columns (compare.ts). */
export function formatTable(cells: Cell[], extra?: { header: string[]; row(c: Cell): string[] }): string {
  const header = ['model', 'T', 'experts hit', 'ms', 'floor ms', 'bound', '% floor', ...(extra?.header ?? [])];
  const rows = cells.map((c) => [
    c.model, String(c.tokens), `${c.distinctExperts}/${c.E}`, c.ms.toFixed(3), c.floorMs.toFixed(3), c.floorKind,
    c.pctOfFloor.toFixed(1), ...(extra?.row(c) ?? []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const option = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const quick = args.includes('--quick');
  const jsonPath = option('--json');
  const models = option('--models')?.split(',') ?? (quick ? QUICK_MODELS : SHAPES.map((m) => m.model));
  const tokenCounts = option('--tokens')?.split(',').map(Number) ?? (quick ? QUICK_TOKENS : TOKENS);
  const unknown = models.filter((m) => !SHAPES.some((s) => s.model === m));
  if (unknown.length > 0 || tokenCounts.some((t) => !(Number.isInteger(t) && t >= 1))) {
    throw new MoetsError('usage', `--models takes ${SHAPES.map((m) => m.model).join(',')} and --tokens positive integers; got ${option('--models')} / ${option('--tokens')}`);
  }
  const backend = getBackend('cuda');
  if (!(backend instanceof CudaBackend)) throw new Error('getBackend("cuda") did not return the CUDA backend');
  const bench = new Bench(backend, quick ? 300 : 1000);
  const info = backend.device.info;
  const device = `${info.name}, sm_${info.computeCapability}, ${info.multiprocessors} SMs`;
  await bench.checkRandomFill();
  const ceilings = await bench.ceilings();
  console.log(`${device}: copy ${ceilings.copyGBs.toFixed(0)} GB/s (read + write), bf16 GEMM 8192³ ${ceilings.gemmTflops.toFixed(0)} TFLOP/s`);
  const cells: Cell[] = [];
  const save = () => jsonPath && writeFileSync(jsonPath, JSON.stringify({ tool: 'moets', device, ceilings, cells } satisfies BenchFile, null, 2));
  for (const s of SHAPES.filter((m) => models.includes(m.model))) {
    const w = bench.weights(s);
    const layer = layerFor(backend, s, w);
    for (const tokens of tokenCounts) {
      const c = await bench.cell(s, layer, w, tokens, ceilings);
      cells.push(c);
      save(); // after every cell, so a run cut short still leaves its cells
      console.log(`${s.model} T=${tokens}: ${c.ms.toFixed(3)} ms (${c.repeats} runs), floor ${c.floorMs.toFixed(3)} ms ${c.floorKind}, ${c.pctOfFloor.toFixed(1)} %`);
    }
    for (const t of Object.values(w) as Tensor[]) t.dispose();
    backend.device.synchronize();
    backend.device.allocator.emptyCache();
  }
  console.log(`\n${formatTable(cells)}`);
  const reached = cells.filter((c) => c.floorMs >= 0.1);
  const geo = Math.exp(reached.reduce((a, c) => a + Math.log(c.pctOfFloor), 0) / Math.max(1, reached.length));
  console.log(`cells with floor ≥ 0.1 ms: ${reached.filter((c) => c.pctOfFloor >= 80).length}/${reached.length} reach 80 %; geometric mean ${geo.toFixed(1)} % of floor`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  try {
    await main();
  } catch (err) {
    if (!(err instanceof MoetsError)) throw err;
    console.error(`bench/moe-layer.ts: ${err.message}`);
    process.exitCode = 1;
  }
}

// The MoE-layer benchmark (`moets bench moe-layer`): bf16, random weights made on the device (Backend.randomNormal),
// real models' expert shapes, one MoeLayer.forward per timing (CUDA events, median after warm-up), timed two ways:
// op by op (each kernel launched from the host, as prefill runs) and captured once as a CUDA graph and replayed (as
// decode runs: launch overhead gone). Each cell is set against its floor, max(selected experts' weight bytes +
// activation bytes ÷ measured copy bandwidth, FLOPs ÷ measured bf16 GEMM rate), both ceilings measured in the same
// run. scripts/peer_moe_layer.py writes the same cells for torch._grouped_mm; bench/compare.ts prints both side by
// side (its speed-up is on the op-by-op time, with a second geometric mean for the graph time).
//
// Legend: H = hidden, F = expert FFN size, E = experts, K = top-k, T = tokens.
// Weights: router [E, H]; gateUp [E, 2F, H]; down [E, H, F]. x: [T, H].
import type { CapturedStep, RouterSpec } from '../backend/backend.ts';
import type { CudaBackend } from '../backend/cuda/cuda-backend.ts';
import { MoetsError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import { MoeLayer, type MoeWeights } from '../moe/moe-layer.ts';
import {
  clockFor, describeDevice, formatTable, measureCopyGBs, measureGemmTflops, median, releaseCachedMemory, timeRepeats, type Ceilings,
} from './measure.ts';

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
export const TOKENS = [1, 8, 64, 512, 4096, 16384];
export const QUICK_TOKENS = [1, 64, 4096];
export const QUICK_MODELS = ['Mixtral-8x7B', 'Qwen3-30B-A3B'];
const BF16_BYTES = 2;

export interface Cell {
  model: string;
  H: number;
  F: number;
  E: number;
  K: number;
  tokens: number;
  /** Median milliseconds of one forward, op by op. */
  ms: number;
  repeats: number;
  /** Median milliseconds of one replay of the forward captured as a CUDA graph (absent: not measured, or failed). */
  graphMs?: number;
  graphRepeats?: number;
  /** Experts the routing of this input actually chose. */
  distinctExperts: number;
  /** Weight bytes of the chosen experts plus the router; activation bytes: x read + output written. */
  weightBytes: number;
  activationBytes: number;
  flops: number;
  floorMs: number;
  floorKind: 'memory' | 'compute';
  /** floorMs as a percentage of ms (op by op), and of graphMs. */
  pctOfFloor: number;
  graphPctOfFloor?: number;
}

export interface BenchFile {
  tool: string;
  kind?: 'moe-layer';
  device: string;
  ceilings: Required<Ceilings>;
  cells: Cell[];
}

export interface MoeLayerOptions {
  models: string[];
  tokens: number[];
  /** Milliseconds of repeats per cell (300 for --quick, else 1000). */
  capMs: number;
  /** Called with the file after every cell, so a run cut short still leaves its cells. */
  save(file: BenchFile): void;
  log(line: string): void;
}

/** The floor of one cell (see the top of this file); shared with compare.ts. */
export function floorOf(s: MoeShape | Cell, tokens: number, distinctExperts: number, c: Required<Ceilings>) {
  const weightBytes = (distinctExperts * 3 * s.H * s.F + s.E * s.H) * BF16_BYTES;
  const activationBytes = 2 * tokens * s.H * BF16_BYTES;
  const flops = 2 * 3 * s.H * s.F * tokens * s.K;
  const memoryMs = (weightBytes + activationBytes) / (c.copyGBs * 1e6);
  const computeMs = flops / (c.gemmTflops * 1e9);
  return { weightBytes, activationBytes, flops, floorMs: Math.max(memoryMs, computeMs), floorKind: memoryMs >= computeMs ? 'memory' as const : 'compute' as const };
}

/** Runs every (model, tokens) cell asked for on the CUDA backend; returns the whole file (also given to save). */
export async function runMoeLayerBench(cuda: CudaBackend, opts: MoeLayerOptions): Promise<BenchFile> {
  const clock = clockFor(cuda);
  const device = describeDevice(cuda);
  const ceilings = {
    copyGBs: measureCopyGBs(cuda, clock, 2 ** 30, opts.capMs),
    gemmTflops: measureGemmTflops(cuda, clock, 8192, opts.capMs),
  };
  opts.log(`${device}: copy ${ceilings.copyGBs.toFixed(0)} GB/s (read + write), bf16 GEMM 8192³ ${ceilings.gemmTflops.toFixed(0)} TFLOP/s`);
  const file: BenchFile = { tool: 'moets', kind: 'moe-layer', device, ceilings, cells: [] };
  for (const s of SHAPES.filter((m) => opts.models.includes(m.model))) {
    const w = weightsFor(cuda, s);
    const layer = new MoeLayer(cuda, {
      kind: 'moe', numExperts: s.E, expertIntermediateSize: s.F, router: s.router, selectionBias: s.router.scoring === 'sigmoid',
    }, w);
    for (const tokens of opts.tokens) {
      const c = await cell(cuda, s, layer, w, tokens, ceilings, opts.capMs, opts.log);
      file.cells.push(c);
      opts.save(file);
      const graph = c.graphMs === undefined ? '' : `; as a graph ${c.graphMs.toFixed(3)} ms (${c.graphRepeats} replays), ${c.graphPctOfFloor!.toFixed(1)} %`;
      opts.log(`${s.model} T=${tokens}: ${c.ms.toFixed(3)} ms op by op (${c.repeats} runs), floor ${c.floorMs.toFixed(3)} ms ${c.floorKind}, ` +
        `${c.pctOfFloor.toFixed(1)} %${graph}`);
    }
    for (const t of Object.values(w) as Tensor[]) t.dispose();
    releaseCachedMemory(cuda);
  }
  return file;
}

function weightsFor(cuda: CudaBackend, s: MoeShape): MoeWeights {
  const w: MoeWeights = {
    router: cuda.randomNormal([s.E, s.H], 'bf16', 10, 1 / Math.sqrt(s.H)),
    gateUp: cuda.randomNormal([s.E, 2 * s.F, s.H], 'bf16', 11, 1 / Math.sqrt(s.H)),
    down: cuda.randomNormal([s.E, s.H, s.F], 'bf16', 12, 1 / Math.sqrt(s.F)),
  };
  if (s.router.scoring === 'sigmoid') w.selectionBias = cuda.randomNormal([s.E], 'f32', 13, 0.01);
  return w;
}

/** Experts the routing of x chooses, counted on the host (outside the timing). */
async function distinctExperts(cuda: CudaBackend, x: Tensor, w: MoeWeights, s: MoeShape): Promise<number> {
  const logits = cuda.linear(x, w.router);
  const { weights, experts } = cuda.route(logits, s.router, w.selectionBias);
  const ids = await experts.read();
  for (const t of [logits, weights, experts]) t.dispose();
  return new Set(ids).size;
}

async function cell(
  cuda: CudaBackend, s: MoeShape, layer: MoeLayer, w: MoeWeights, tokens: number, c: Required<Ceilings>, capMs: number, log: (line: string) => void,
): Promise<Cell> {
  const x = cuda.randomNormal([tokens, s.H], 'bf16', 100 + tokens, 1);
  const distinct = await distinctExperts(cuda, x, w, s);
  const times = await timeForwards(cuda, () => layer.forward(x), capMs);
  const graphTimes = await timeGraphReplays(cuda, () => layer.forward(x), capMs, `${s.model} T=${tokens}`, log);
  x.dispose();
  const ms = median(times);
  const floor = floorOf(s, tokens, distinct, c);
  const { model, H, F, E, K } = s;
  const graph = graphTimes && { graphMs: median(graphTimes), graphRepeats: graphTimes.length };
  return {
    model, H, F, E, K, tokens, ms, repeats: times.length, ...graph, distinctExperts: distinct, ...floor,
    pctOfFloor: (100 * floor.floorMs) / ms, ...(graph && { graphPctOfFloor: (100 * floor.floorMs) / graph.graphMs }),
  };
}

/**
 * CUDA-event times of replays of `forward` captured once as a CUDA graph (Backend.capture, as decode steps run),
 * after one warm-up replay. The op-by-op timing ran the same forward first, so every kernel is loaded before the
 * capture (loading inside one is not allowed); the memory the op-by-op runs left cached goes back to the driver
 * first, since a capture takes its memory fresh. A device error (out of memory in the capture's pool) is logged and
 * leaves the cell without graph times.
 */
async function timeGraphReplays(
  cuda: CudaBackend, forward: () => Promise<Tensor>, capMs: number, what: string, log: (line: string) => void,
): Promise<number[] | undefined> {
  releaseCachedMemory(cuda);
  let step: CapturedStep;
  try {
    step = await cuda.capture(forward);
  } catch (err) {
    if (!(err instanceof MoetsError && err.kind === 'device')) throw err;
    log(`${what}: no graph timing: ${err.message}`);
    return undefined;
  }
  try {
    return timeRepeats(clockFor(cuda), () => { void step.replay(); }, { capMs });
  } finally {
    step.dispose();
  }
}

/**
 * CUDA-event times of `forward` after one warm-up, as timeRepeats (measure.ts) but awaiting the forward: without a
 * routing observer it queues all its work before its first await, so the events bracket exactly that work.
 */
async function timeForwards(cuda: CudaBackend, forward: () => Promise<Tensor>, capMs: number): Promise<number[]> {
  const run = async (): Promise<number> => {
    let pending: Promise<Tensor> | undefined;
    const t = cuda.device.time(() => { pending = forward(); });
    (await pending!).dispose();
    return t;
  };
  await run();
  const times: number[] = [];
  let spent = 0;
  while (times.length === 0 || (times.length < 3 && spent < 3 * capMs) || (times.length < 25 && spent < capMs)) {
    times.push(await run());
    spent += times.at(-1)!;
  }
  return times;
}

/**
 * The table, one row per cell: 'ms' and '% floor' op by op, 'graph ms' and 'graph %' replayed as a CUDA graph ('—'
 * where not measured, e.g. files from before graph timing); `extra` adds columns (compare.ts).
 */
export function formatMoeTable(cells: Cell[], extra?: { header: string[]; row(c: Cell): string[] }): string {
  const header = ['model', 'T', 'experts hit', 'floor ms', 'bound', 'ms', '% floor', 'graph ms', 'graph %', ...(extra?.header ?? [])];
  return formatTable(header, cells.map((c) => [
    c.model, String(c.tokens), `${c.distinctExperts}/${c.E}`, c.floorMs.toFixed(3), c.floorKind, c.ms.toFixed(3),
    c.pctOfFloor.toFixed(1), c.graphMs?.toFixed(3) ?? '—', c.graphPctOfFloor?.toFixed(1) ?? '—', ...(extra?.row(c) ?? []),
  ]));
}

/** The geometric mean of xs (1 for none). */
export function geometricMean(xs: readonly number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / Math.max(1, xs.length));
}

/**
 * The last lines of a run: cells with floor ≥ 0.1 ms that reach 80 %, and the geometric mean of % floor, op by op
 * and (over the cells that have one) replayed as a graph.
 */
export function moeSummary(cells: Cell[]): string {
  const reached = cells.filter((c) => c.floorMs >= 0.1);
  const graphed = reached.filter((c) => c.graphPctOfFloor !== undefined);
  return `cells with floor ≥ 0.1 ms: op by op ${reached.filter((c) => c.pctOfFloor >= 80).length}/${reached.length} reach 80 %, ` +
    `geometric mean ${geometricMean(reached.map((c) => c.pctOfFloor)).toFixed(1)} % of floor; as graphs ` +
    `${graphed.filter((c) => c.graphPctOfFloor! >= 80).length}/${graphed.length} reach 80 %, geometric mean ` +
    `${geometricMean(graphed.map((c) => c.graphPctOfFloor!)).toFixed(1)} %`;
}

// The decode benchmark (`moets bench decode`): tokens/s of greedy decoding at batch B against the HBM floor.
// Per (model, batch) cell: a prompt of P random ids per sequence is prefilled, W warm-up steps run, then N decode
// steps are timed one by one (wall clock around DecodeStepper.step, which ends with the logits on the host); the
// greedy pick of the next ids (host argmax) is outside the timing. Then two more steps run with a routing observer
// to count the experts each MoE layer runs per step. The floor is decode-floor.ts's bytes ÷ the copy bandwidth
// measured in the same run; scripts/peer_decode.py writes the same cells for transformers' generate.
//
// Models: the embedded default model (its real weights) as a quick smoke case, and full-size configs
// (configs/<name>/config.json) with random bf16 weights made on the device. One model is built at a time and freed
// before the next.
//
// Legend: B = batch, P = prompt tokens, N = timed steps, W = warm-up steps, V = vocabulary.
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/backend.ts';
import { getBackend, type DeviceChoice } from '../backend/registry.ts';
import { DTYPE_BYTES, type FloatDType } from '../core/dtype.ts';
import { fail } from '../core/errors.ts';
import { DecodeStepper } from '../generate/decode-step.ts';
import { SeededRandom } from '../generate/sampling.ts';
import { ModelConfig } from '../io/config.ts';
import type { DecoderLM } from '../models/decoder.ts';
import { DEFAULT_MODEL_DIR, loadModel } from '../models/load.ts';
import type { ModelCache } from '../models/model.ts';
import { randomModel } from '../models/random-weights.ts';
import type { RoutingDecision } from '../moe/observer.ts';
import { decodeStepBytes } from './decode-floor.ts';
import { clockFor, describeDevice, formatTable, mean, measureCopyGBs, median, releaseCachedMemory } from './measure.ts';

/** A model the benchmark can build: its name on the command line, where it comes from, how to build it. */
export interface DecodeModel {
  name: string;
  source: string;
  build(backend: Backend): Promise<{ model: DecoderLM; dtype: FloatDType; release(): void }>;
}

/** A model of configs/<name>/config.json (the Hub's, unchanged) with random bf16 weights. */
function fullSize(name: string, hub: string): DecodeModel {
  return {
    name,
    source: `${hub} config, random bf16 weights`,
    async build(backend) {
      const config = ModelConfig.read(fileURLToPath(new URL(`./configs/${name}`, import.meta.url)));
      const { model, weights } = randomModel(config, { device: backend.name, dtype: 'bf16' });
      return { model, dtype: 'bf16', release: () => weights.dispose() };
    },
  };
}

/** In the order they run: the small one first, so that a broken build fails in seconds. */
export const DECODE_MODELS: DecodeModel[] = [
  {
    name: 'default',
    source: 'the embedded default model (assets/default-model), bf16 on the GPU, f32 on the CPU',
    async build(backend) {
      const dtype = backend.name === 'cpu' ? 'f32' : 'bf16';
      // Small: its weights go back to the device when collected.
      return { model: await loadModel(DEFAULT_MODEL_DIR, { device: backend.name, dtype }), dtype, release: () => {} };
    },
  },
  fullSize('Mixtral-8x7B', 'mistralai/Mixtral-8x7B-v0.1'),
  fullSize('Qwen3-30B-A3B', 'Qwen/Qwen3-30B-A3B'),
];

export interface DecodeCell {
  model: string;
  batch: number;
  promptTokens: number;
  steps: number;
  warmupSteps: number;
  dtype: string;
  /** Timed steps that replayed a captured step (a CUDA graph on the GPU); the rest ran op by op. */
  stepsReplayed: number;
  prefillMs: number;
  /** Median and mean wall-clock milliseconds of one step (B new tokens). */
  msPerStep: number;
  meanMsPerStep: number;
  /** batch ÷ median step time. */
  tokensPerSecond: number;
  /** Experts a MoE layer runs per step (mean over layers and counted steps), of numExperts; top-k per token. */
  distinctExperts: number;
  numExperts: number;
  topK: number;
  weightBytes: number;
  kvBytes: number;
  floorMs: number;
  floorTokensPerSecond: number;
  pctOfFloor: number;
}

export interface DecodeBenchFile {
  tool: string;
  kind: 'decode';
  device: string;
  ceilings: { copyGBs: number };
  cells: DecodeCell[];
}

export interface DecodeOptions {
  device: DeviceChoice;
  models: string[];
  batches: number[];
  promptTokens: number;
  steps: number;
  warmup: number;
  /** Called with the file after every cell, so a run cut short still leaves its cells. */
  save(file: DecodeBenchFile): void;
  log(line: string): void;
}

const COUNTED_STEPS = 2;

export async function runDecodeBench(opts: DecodeOptions): Promise<DecodeBenchFile> {
  const backend = getBackend(opts.device);
  const clock = clockFor(backend);
  const device = describeDevice(backend);
  const copyGBs = measureCopyGBs(backend, clock, backend.name === 'cpu' ? 2 ** 26 : 2 ** 30, 300);
  opts.log(`${device}: copy ${copyGBs.toFixed(0)} GB/s (read + write)`);
  const file: DecodeBenchFile = { tool: 'moets', kind: 'decode', device, ceilings: { copyGBs }, cells: [] };
  for (const entry of DECODE_MODELS.filter((m) => opts.models.includes(m.name))) {
    const start = performance.now();
    const built = await entry.build(backend);
    opts.log(`${entry.name} (${entry.source}): built in ${((performance.now() - start) / 1e3).toFixed(1)} s`);
    try {
      for (const batch of opts.batches) {
        const c = await decodeCell(entry.name, built.model, built.dtype, batch, opts, copyGBs);
        file.cells.push(c);
        opts.save(file);
        opts.log(`${entry.name} B=${batch}: ${c.msPerStep.toFixed(2)} ms/step, ${c.tokensPerSecond.toFixed(1)} tokens/s; floor ` +
          `${c.floorMs.toFixed(2)} ms (${c.floorTokensPerSecond.toFixed(1)} tokens/s), ${c.pctOfFloor.toFixed(1)} %`);
      }
    } finally {
      built.release();
      releaseCachedMemory(backend);
    }
  }
  return file;
}

async function decodeCell(
  name: string, model: DecoderLM, dtype: FloatDType, batch: number, opts: DecodeOptions, copyGBs: number,
): Promise<DecodeCell> {
  const { promptTokens: P, steps: N, warmup: W } = opts;
  const V = model.vocabSize;
  const cache = newDecodeCache(model, batch, P + W + N + COUNTED_STEPS);
  const rng = new SeededRandom(1000 * batch + P);
  const prompt = Int32Array.from({ length: batch * P }, () => Math.floor(rng.next() * V)); // [B, P] row-major
  const stepper = new DecodeStepper(model, cache);
  let start = performance.now();
  const first = await stepper.step(prompt); // [B, V]
  const prefillMs = performance.now() - start;
  checkLogits(first, `${name} (${dtype})`, model.spec.layers.length);
  let ids = argmaxRows(first, batch, V);
  for (let i = 0; i < W; i++) ids = argmaxRows(await stepper.step(ids), batch, V);
  const times: number[] = [];
  const replayedBefore = stepper.counts.replayed;
  for (let i = 0; i < N; i++) {
    start = performance.now();
    const logits = await stepper.step(ids);
    times.push(performance.now() - start);
    ids = argmaxRows(logits, batch, V);
  }
  const replayed = stepper.counts.replayed - replayedBefore;
  stepper.dispose();
  const distinctByLayer = await countExperts(model, cache, ids, batch);
  cache.dispose();
  const moeLayers = model.spec.layers.flatMap((l) => (l.ffn.kind === 'moe' ? [l.ffn] : []));
  const { weightBytes, kvBytes } = decodeStepBytes(model.spec, DTYPE_BYTES[dtype], batch, distinctByLayer, P + W + (N + 1) / 2);
  const msPerStep = median(times);
  const floorMs = (weightBytes + kvBytes) / (copyGBs * 1e6);
  return {
    model: name, batch, promptTokens: P, steps: N, warmupSteps: W, dtype, stepsReplayed: replayed, prefillMs, msPerStep, meanMsPerStep: mean(times),
    tokensPerSecond: (1e3 * batch) / msPerStep,
    distinctExperts: mean(distinctByLayer.filter((_, l) => model.spec.layers[l]!.ffn.kind === 'moe')),
    numExperts: moeLayers[0]?.numExperts ?? 0, topK: moeLayers[0]?.router.topK ?? 0,
    weightBytes, kvBytes, floorMs, floorTokensPerSecond: (1e3 * batch) / floorMs, pctOfFloor: (100 * floorMs) / msPerStep,
  };
}

/** Greedy picks: the index of the largest logit of each of the B rows of logits [B, V]. */
export function argmaxRows(logits: Float32Array, batch: number, V: number): Int32Array {
  return Int32Array.from({ length: batch }, (_, b) => {
    let best = b * V;
    for (let i = best + 1; i < (b + 1) * V; i++) if (logits[i]! > logits[best]!) best = i;
    return best - b * V;
  });
}

/** Random weights must still give usable logits through every layer: all finite, not all equal. */
function checkLogits(logits: Float32Array, name: string, layers: number): void {
  let [min, max] = [Infinity, -Infinity];
  for (const v of logits) {
    if (!Number.isFinite(v)) fail('unsupported', `${name}: a prefill logit is ${v} after ${layers} layers; the activations overflow, report this with the command`);
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  if (!(max > min)) fail('unsupported', `${name}: every prefill logit is ${min}; the model's activations collapsed`);
}

/**
 * Experts each layer runs per step (distinct ids over the batch's top-k choices), averaged over COUNTED_STEPS more
 * steps with a routing observer attached (so outside the timed steps: the observer reads routing back each layer,
 * and DecodeStepper runs observed steps plainly).
 */
async function countExperts(model: DecoderLM, cache: ModelCache, ids: Int32Array, batch: number): Promise<number[]> {
  const sums = new Array<number>(model.spec.layers.length).fill(0);
  model.setRoutingObserver({ onRouting: (d: RoutingDecision) => { sums[d.layer]! += new Set(d.experts).size; } });
  const stepper = new DecodeStepper(model, cache);
  try {
    for (let i = 0; i < COUNTED_STEPS; i++) ids = argmaxRows(await stepper.step(ids), batch, model.vocabSize);
  } finally {
    stepper.dispose();
    model.setRoutingObserver(undefined);
  }
  return sums.map((s) => s / COUNTED_STEPS);
}

/** A cache for `batch` sequences with room for every position a cell runs, so it never moves (captures stay valid). */
function newDecodeCache(model: DecoderLM, batch: number, capacity: number): ModelCache {
  if (capacity > model.maxPositions) {
    fail('usage', `the prompt and steps need ${capacity} positions but the model has ${model.maxPositions}; pass fewer --prompt-tokens or --steps`);
  }
  return model.newCache({ batch, capacity });
}

/** The table: one row per cell. `extra` adds columns (compare.ts: the peer's numbers). */
export function formatDecodeTable(cells: DecodeCell[], extra?: { header: string[]; row(c: DecodeCell): string[] }): string {
  const header = ['model', 'B', 'experts/layer', 'ms/step', 'tokens/s', 'floor ms', 'floor tok/s', '% floor', ...(extra?.header ?? [])];
  return formatTable(header, cells.map((c) => [
    c.model, String(c.batch), `${c.distinctExperts.toFixed(1)}/${c.numExperts}`, c.msPerStep.toFixed(2), c.tokensPerSecond.toFixed(1),
    c.floorMs.toFixed(2), c.floorTokensPerSecond.toFixed(1), c.pctOfFloor.toFixed(1), ...(extra?.row(c) ?? []),
  ]));
}

/** The last line of a run: batch-1 cells against issue 3's target (≥ 85 % of the floor). */
export function decodeSummary(cells: DecodeCell[]): string {
  const single = cells.filter((c) => c.batch === 1);
  return `batch 1: ${single.filter((c) => c.pctOfFloor >= 85).length}/${single.length} cells reach 85 % of the HBM floor` +
    (single.length ? ` (${single.map((c) => `${c.model} ${c.pctOfFloor.toFixed(1)} %`).join(', ')})` : '');
}

// Picking the next token from one row of logits: greedy (temperature 0) or sampling with temperature,
// top-k and top-p in Hugging Face's order, driven by a seeded random generator (same seed, same tokens).
//
// V = vocabulary size.
import { fail } from '../core/errors.ts';

export interface SamplingOptions {
  /** 0: greedy argmax. Otherwise logits are divided by it before filtering. */
  temperature: number;
  /** Keep only the k highest logits (and any tied with the k-th); 0: off. */
  topK: number;
  /** Keep the smallest set of most probable tokens whose probability sums to ≥ topP; 1: off. */
  topP: number;
}

/** A seeded uniform generator on [0, 1) (mulberry32: 32-bit state, period 2^32). */
export class SeededRandom {
  private state: number;

  /** Any safe integer seed; its high and low 32 bits are both mixed in. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) fail('usage', `seed must be an integer, got ${seed}`);
    const high = Math.floor(seed / 2 ** 32) | 0;
    this.state = (seed | 0) ^ Math.imul(high, 0x9e3779b9);
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
}

/** One clear line for each out-of-range option (shared by generate and the CLI). */
export function validateSamplingOptions(opts: SamplingOptions): void {
  const { temperature, topK, topP } = opts;
  if (!(Number.isFinite(temperature) && temperature >= 0)) {
    fail('usage', `temperature must be a number ≥ 0 (0 = greedy), got ${temperature}`);
  }
  if (!(Number.isInteger(topK) && topK >= 0)) fail('usage', `top-k must be an integer ≥ 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) fail('usage', `top-p must be in (0, 1] (1 = off), got ${topP}`);
}

/** Index of the largest logit; ties go to the lowest id; NaN loses to any number. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]! || Number.isNaN(logits[best]!)) best = i;
  return best;
}

/** The distribution sampling draws from: the token ids that survive the filters (ascending) and their probabilities. */
export interface TokenDistribution {
  ids: Int32Array;
  probs: Float64Array;
}

/** logits / temperature → top-k → top-p → softmax (temperature > 0). */
export function samplingDistribution(logits: Float32Array, opts: SamplingOptions): TokenDistribution {
  const V = logits.length;
  // scaled: [V] in float64 so that filtering and probabilities do not round twice; NaN counts as -inf.
  const scaled = new Float64Array(V);
  for (let i = 0; i < V; i++) scaled[i] = Number.isNaN(logits[i]!) ? -Infinity : logits[i]! / opts.temperature;
  const afterTopK = opts.topK > 0 && opts.topK < V ? idsAtLeast(scaled, kthLargest(scaled, opts.topK)) : allIds(V);
  const probs = softmaxOver(scaled, afterTopK);
  if (opts.topP >= 1) return { ids: afterTopK, probs };
  const nucleus = keptInNucleus(afterTopK, probs, opts.topP);
  return { ids: nucleus, probs: softmaxOver(scaled, nucleus) };
}

/** Next token id: argmax when temperature is 0, else one draw from samplingDistribution. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: SeededRandom): number {
  if (opts.temperature === 0) return argmax(logits);
  const { ids, probs } = samplingDistribution(logits, opts);
  const u = rng.next();
  let cumulative = 0;
  for (let i = 0; i < ids.length; i++) {
    cumulative += probs[i]!;
    if (u < cumulative) return ids[i]!;
  }
  return ids[ids.length - 1]!; // u within rounding of 1
}

function allIds(count: number): Int32Array {
  const ids = new Int32Array(count);
  for (let i = 0; i < count; i++) ids[i] = i;
  return ids;
}

/** The k-th largest value (1 ≤ k < length), through a min-heap of the k largest seen so far. */
function kthLargest(values: Float64Array, k: number): number {
  const heap = values.slice(0, k).sort(); // ascending order is a valid min-heap
  for (let i = k; i < values.length; i++) {
    const x = values[i]!;
    if (!(x > heap[0]!)) continue;
    let parent = 0; // replace the root, then sift it down
    for (;;) {
      const left = 2 * parent + 1;
      if (left >= k) break;
      const child = left + 1 < k && heap[left + 1]! < heap[left]! ? left + 1 : left;
      if (heap[child]! >= x) break;
      heap[parent] = heap[child]!;
      parent = child;
    }
    heap[parent] = x;
  }
  return heap[0]!;
}

/** Ids (ascending) whose value is ≥ threshold: what transformers' TopKLogitsWarper keeps (ties included). */
function idsAtLeast(values: Float64Array, threshold: number): Int32Array {
  const ids: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i]! >= threshold) ids.push(i);
  return Int32Array.from(ids);
}

/** Softmax of scaled[ids] (probs[j] belongs to ids[j]); all-(-inf) rows give a uniform distribution. */
function softmaxOver(scaled: Float64Array, ids: Int32Array): Float64Array {
  let max = -Infinity;
  for (let j = 0; j < ids.length; j++) max = Math.max(max, scaled[ids[j]!]!);
  const probs = new Float64Array(ids.length);
  if (max === -Infinity) return probs.fill(1 / ids.length);
  let sum = 0;
  for (let j = 0; j < ids.length; j++) sum += probs[j] = Math.exp(scaled[ids[j]!]! - max);
  for (let j = 0; j < ids.length; j++) probs[j]! /= sum;
  return probs;
}

/**
 * Nucleus: the most probable ids, in order, up to and including the one that brings the cumulative
 * probability to ≥ topP (ties broken towards the lowest id). A kept token's probability exceeds
 * (1 - topP) / ids.length (it and the ids below it sum to more than 1 - topP), so only those are sorted.
 */
function keptInNucleus(ids: Int32Array, probs: Float64Array, topP: number): Int32Array {
  const floor = ((1 - topP) / ids.length) * (1 - 1e-9);
  const candidates: number[] = [];
  for (let j = 0; j < ids.length; j++) if (probs[j]! >= floor) candidates.push(probs[j]!);
  const ascending = Float64Array.from(candidates).sort();
  // Walk down from the most probable until the sum reaches topP; `cutoff` is the last probability taken.
  let rank = ascending.length - 1;
  let cumulative = ascending[rank]!;
  while (cumulative < topP && rank > 0) cumulative += ascending[--rank]!;
  const cutoff = ascending[rank]!;
  let tiesTaken = 0;
  while (rank + tiesTaken < ascending.length && ascending[rank + tiesTaken] === cutoff) tiesTaken++;
  const kept: number[] = [];
  for (let j = 0; j < ids.length; j++) {
    if (probs[j]! > cutoff) kept.push(ids[j]!);
    else if (probs[j] === cutoff && tiesTaken > 0) { kept.push(ids[j]!); tiesTaken--; }
  }
  return Int32Array.from(kept);
}

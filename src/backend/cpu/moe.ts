// CPU reference kernels for the MoE stages: route, sort by expert, gather, weighted scatter-add.
//
// logits: [T, E]; weights: f32 [T, K]; experts: i32 [T, K]; slots: i32 [N] (N = T*K, flat t*K + j, sorted by expert);
// offsets: i32 [E + 1]; y: [N, D] expert outputs in sorted order.
import type { RouterSpec } from '../backend.ts';
import { softmaxValues } from './elementwise.ts';

/** Indices of the k largest values of row[0..E), largest first; ties go to the lower index. */
export function topKIndices(row: Float32Array, k: number): number[] {
  const chosen: number[] = [];
  const taken = new Uint8Array(row.length);
  for (let j = 0; j < k; j++) {
    let best = -1;
    for (let e = 0; e < row.length; e++) {
      if (!taken[e] && (best < 0 || row[e]! > row[best]!)) best = e;
    }
    taken[best] = 1;
    chosen.push(best);
  }
  return chosen;
}

/** One token's choice: expert ids (best selection score first) and their weights, by the spec's scoring. */
function routeRow(row: Float32Array, spec: RouterSpec, bias?: Float32Array): { chosen: number[]; weights: number[] } {
  const K = spec.topK;
  if (spec.scoring === 'topk-softmax') {
    const chosen = topKIndices(row, K);
    const top = softmaxValues(Float32Array.from(chosen, (e) => row[e]!), K);
    return { chosen, weights: Array.from(top) };
  }
  const scores = spec.scoring === 'softmax-topk' ? softmaxValues(row, row.length) : row.map((v) => 1 / (1 + Math.exp(-v)));
  const choice = bias ? scores.map((v, e) => v + bias[e]!) : Float32Array.from(scores);
  if (spec.groups) maskGroups(choice, spec.groups);
  const chosen = topKIndices(choice, K);
  let weights = chosen.map((e) => scores[e]!);
  if (spec.normalize) {
    const sum = weights.reduce((a, b) => a + b, 0) + (spec.scoring === 'sigmoid' ? 1e-20 : 0);
    weights = weights.map((w) => w / sum);
  }
  return { chosen, weights };
}

/** Group-limited selection: keep the experts of the `keep` groups whose two best scores sum highest. */
function maskGroups(choice: Float32Array, groups: { count: number; keep: number }): void {
  const size = choice.length / groups.count;
  const groupScores = new Float32Array(groups.count);
  for (let g = 0; g < groups.count; g++) {
    const [a, b] = topKIndices(choice.subarray(g * size, (g + 1) * size), 2);
    groupScores[g] = choice[g * size + a!]! + choice[g * size + b!]!;
  }
  const kept = new Set(topKIndices(groupScores, groups.keep));
  for (let g = 0; g < groups.count; g++) if (!kept.has(g)) choice.fill(-Infinity, g * size, (g + 1) * size);
}

export function routeValues(
  logits: Float32Array, E: number, spec: RouterSpec, bias?: Float32Array,
): { weights: Float32Array; experts: Int32Array } {
  const T = logits.length / E;
  const K = spec.topK;
  const weights = new Float32Array(T * K);
  const experts = new Int32Array(T * K);
  for (let t = 0; t < T; t++) {
    const { chosen, weights: w } = routeRow(logits.subarray(t * E, (t + 1) * E), spec, bias);
    chosen.forEach((e, j) => {
      experts[t * K + j] = e;
      weights[t * K + j] = w[j]! * (spec.scale ?? 1);
    });
  }
  return { weights, experts };
}

/** Counting sort of slots by expert id, stable. */
export function sortByExpertValues(experts: Int32Array, E: number): { slots: Int32Array; offsets: Int32Array } {
  const offsets = new Int32Array(E + 1);
  for (const e of experts) offsets[e + 1]!++;
  for (let e = 0; e < E; e++) offsets[e + 1]! += offsets[e]!;
  const next = offsets.slice(0, E);
  const slots = new Int32Array(experts.length);
  for (let s = 0; s < experts.length; s++) slots[next[experts[s]!]!++] = s;
  return { slots, offsets };
}

export function gatherRowsValues(x: Float32Array, D: number, slots: Int32Array, K: number): Float32Array {
  const out = new Float32Array(slots.length * D);
  for (let n = 0; n < slots.length; n++) {
    const t = Math.floor(slots[n]! / K);
    out.set(x.subarray(t * D, (t + 1) * D), n * D);
  }
  return out;
}

export function scatterAddWeightedValues(
  y: Float32Array, D: number, slots: Int32Array, weights: Float32Array, K: number, T: number,
): Float32Array {
  const out = new Float32Array(T * D);
  for (let n = 0; n < slots.length; n++) {
    const s = slots[n]!;
    const t = Math.floor(s / K);
    const w = weights[s]!;
    for (let d = 0; d < D; d++) out[t * D + d] += w * y[n * D + d]!;
  }
  return out;
}

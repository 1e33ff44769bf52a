// Conformance cases for the router variants beyond softmax → top-k: sigmoid scores with a selection-only bias,
// group-limited selection, renormalisation (+1e-20) and routed scaling (DeepSeek-V3); top-k then softmax over the k
// (GPT-OSS, Granite); softmax → top-k with a scale (DeepSeek-V2). References are float64 plain loops written here.
//
// Legend: T = tokens, E = experts, K = top-k, G = expert groups, size = E / G.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { RouterSpec } from '../../src/backend/backend.ts';
import type { Rng } from '../util/random.ts';
import {
  conformanceCase, expectClose, expectExact, expectTensor, floatTensor, readFloat, readIndex, type SuiteContext,
} from './check.ts';
import { separatedLogits } from './moe-ops.ts';
import { sigmoid, softmaxRow } from './reference.ts';

/** Indices of the k largest of `values`, largest first, ties to the lower index. */
function topIndices(values: readonly number[], k: number): number[] {
  return values.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i).slice(0, k).map((r) => r.i);
}

/** DeepSeek-V3's router on one row of logits, from its description in transformers' DeepseekV3TopkRouter. */
function sigmoidRouteRow(logits: readonly number[], bias: readonly number[] | undefined, spec: RouterSpec) {
  const scores = logits.map(sigmoid);
  const choice = scores.map((s, e) => s + (bias ? bias[e]! : 0));
  if (spec.groups) {
    const size = logits.length / spec.groups.count;
    const groupScores = Array.from({ length: spec.groups.count }, (_, g) => {
      const members = choice.slice(g * size, (g + 1) * size);
      return topIndices(members, 2).reduce((sum, i) => sum + members[i]!, 0);
    });
    const kept = new Set(topIndices(groupScores, spec.groups.keep));
    choice.forEach((_, e) => { if (!kept.has(Math.floor(e / size))) choice[e] = -Infinity; });
  }
  const experts = topIndices(choice, spec.topK);
  const picked = experts.map((e) => scores[e]!);
  const total = spec.normalize ? picked.reduce((a, b) => a + b, 0) + 1e-20 : 1;
  return { experts, weights: picked.map((w) => (w / total) * (spec.scale ?? 1)) };
}

/** Smallest gap between distinct finite values (so that f32 rounding cannot reorder them). */
function minGap(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  let gap = Infinity;
  for (let i = 1; i < sorted.length; i++) gap = Math.min(gap, sorted[i]! - sorted[i - 1]!);
  return gap;
}

/**
 * Logits (multiples of 1/4, exact in every dtype) and a bias (multiples of 1/64, std ≈ 0.25); each row is redrawn
 * until its biased scores and its group scores are at least 1e-5 apart, so f32 arithmetic chooses as float64 does.
 */
function separatedSigmoidInputs(rng: Rng, T: number, E: number, G: number): { logits: number[]; bias: number[] } {
  const bias = Array.from(rng.normals(E, 0.25), (v) => Math.round(v * 64) / 64);
  const size = E / G;
  const separated = (row: number[]) => {
    const choice = row.map((l, e) => sigmoid(l) + bias[e]!);
    const groupScores = Array.from({ length: G }, (_, g) => {
      const members = choice.slice(g * size, (g + 1) * size).sort((a, b) => b - a);
      return members[0]! + members[1]!;
    });
    return minGap(choice) > 1e-5 && (G === 1 || minGap(groupScores) > 1e-5);
  };
  const logits: number[] = [];
  for (let t = 0; t < T; t++) {
    let row = separatedLogits(rng, 1, E);
    while (!separated(row)) row = separatedLogits(rng, 1, E);
    logits.push(...row);
  }
  return { logits, bias };
}

export function routingVariantCases(ctx: SuiteContext): void {
  describe('router variants', () => {
    conformanceCase(ctx, 'route: sigmoid with selection bias, groups, normalize and scale', async (rng, tag, b) => {
      const shapes = [
        // T, E, K, G (1: no groups), keep, normalize, scale
        [31, 16, 4, 4, 2, true, 2.5], [1, 64, 8, 8, 4, true, 2.5], [17, 12, 3, 3, 1, true, 1],
        [9, 8, 2, 1, 1, false, 1], [33, 32, 6, 4, 3, false, 1.5],
      ] as const;
      let biasChangedAChoice = false;
      for (const dtype of ctx.dtypes) {
        for (const [T, E, K, G, keep, normalize, scale] of shapes) {
          const { logits, bias } = separatedSigmoidInputs(rng, T, E, G);
          const spec: RouterSpec = { scoring: 'sigmoid', topK: K, normalize, scale, ...(G > 1 ? { groups: { count: G, keep } } : {}) };
          const what = `${tag} ${dtype} T=${T} E=${E} K=${K} groups=${G}/${keep} normalize=${normalize} scale=${scale}`;
          const logitsT = floatTensor(b, logits, [T, E], dtype);
          for (const withBias of [true, false]) {
            const { weights, experts } = b.route(logitsT.t, spec, withBias ? b.upload(Float32Array.from(bias), [E], 'f32') : undefined);
            expectTensor(weights, 'f32', [T, K], what);
            expectTensor(experts, 'i32', [T, K], what);
            const rows = Array.from({ length: T }, (_, t) => sigmoidRouteRow(logits.slice(t * E, (t + 1) * E), withBias ? bias : undefined, spec));
            expectExact(await readIndex(experts, what), rows.flatMap((r) => r.experts), `${what} bias=${withBias} experts`);
            expectClose(await readFloat(weights, what), rows.flatMap((r) => r.weights), 'f32', `${what} bias=${withBias} weights`);
            if (withBias) {
              const unbiased = rows.map((_, t) => sigmoidRouteRow(logits.slice(t * E, (t + 1) * E), undefined, spec).experts.join());
              biasChangedAChoice ||= rows.some((r, t) => r.experts.join() !== unbiased[t]);
            }
          }
        }
      }
      assert.ok(biasChangedAChoice, `${tag}: the selection bias never changed a choice; the case does not test it`);
    });

    conformanceCase(ctx, 'route: top-k of the logits, then softmax over the k', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [T, E, K, scale] of [[31, 8, 2, 1], [1, 32, 4, 1], [17, 7, 7, 1], [5, 24, 1, 1], [65, 16, 4, 0.75]] as const) {
          const logits = separatedLogits(rng, T, E);
          const { weights, experts } = b.route(floatTensor(b, logits, [T, E], dtype).t, { scoring: 'topk-softmax', topK: K, normalize: false, scale });
          expectTensor(weights, 'f32', [T, K], tag);
          const expectedExperts: number[] = [];
          const expectedWeights: number[] = [];
          for (let t = 0; t < T; t++) {
            const row = logits.slice(t * E, (t + 1) * E);
            const chosen = topIndices(row, K);
            expectedExperts.push(...chosen);
            expectedWeights.push(...softmaxRow(chosen.map((e) => row[e]!)).map((w) => w * scale));
          }
          const what = `${tag} ${dtype} T=${T} E=${E} K=${K} scale=${scale}`;
          expectExact(await readIndex(experts, what), expectedExperts, `${what} experts`);
          expectClose(await readFloat(weights, what), expectedWeights, 'f32', `${what} weights`);
        }
      }
    });

    conformanceCase(ctx, 'route: softmax then top-k with a routed scale', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [T, E, K, normalize, scale] of [[31, 16, 6, false, 16], [3, 8, 2, true, 2.5]] as const) {
          const logits = separatedLogits(rng, T, E);
          const { weights, experts } = b.route(floatTensor(b, logits, [T, E], dtype).t, { scoring: 'softmax-topk', topK: K, normalize, scale });
          const expectedExperts: number[] = [];
          const expectedWeights: number[] = [];
          for (let t = 0; t < T; t++) {
            const probs = softmaxRow(logits.slice(t * E, (t + 1) * E));
            const chosen = topIndices(probs, K);
            const total = normalize ? chosen.reduce((s, e) => s + probs[e]!, 0) : 1;
            expectedExperts.push(...chosen);
            expectedWeights.push(...chosen.map((e) => (probs[e]! / total) * scale));
          }
          const what = `${tag} ${dtype} T=${T} E=${E} K=${K} normalize=${normalize} scale=${scale}`;
          expectExact(await readIndex(experts, what), expectedExperts, `${what} experts`);
          expectClose(await readFloat(weights, what), expectedWeights, 'f32', `${what} weights`);
        }
      }
    });
  });
}

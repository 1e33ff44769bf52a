// Conformance cases for the ops GPT-OSS adds: attention with per-head sinks (prefill, decode against a cache,
// sliding window, GQA, sinks that dominate and sinks that vanish), siluMul with the clamped SwiGLU (inputs past
// ±limit), and groupedLinear with a per-expert bias (experts with 0 rows). References are float64 plain loops
// written here from transformers' GPT-OSS code (eager_attention_forward, GptOssExperts._apply_gate).
//
// Legend: T = tokens, S = cache rows, H = query heads, Hkv = kv heads, Dh = head dim, Dv = value dim,
// R = rows, F = FFN size, E = experts, Kin/Nout = expert GEMM sizes.
import { describe } from 'node:test';
import type { AttentionOptions, ClampedGlu } from '../../src/backend/backend.ts';
import {
  conformanceCase, expectClose, expectTensor, floatTensor, indexTensor, randomTensor, readFloat, type SuiteContext,
} from './check.ts';
import { linearRef } from './reference.ts';

interface SinkCase {
  name: string;
  T: number; S: number; H: number; Hkv: number; Dh: number; Dv: number;
  queryStart: number; kvLength: number; window?: number;
  /** Sink logits per head: random N(0, 1) times `sinkScale`, plus the listed extremes on the first heads. */
  sinkScale: number; extremes?: number[];
}

const SINK_CASES: SinkCase[] = [
  { name: 'prefill, GQA 6/2', T: 31, S: 31, H: 6, Hkv: 2, Dh: 16, Dv: 16, queryStart: 0, kvLength: 31, sinkScale: 1 },
  { name: 'sliding window, prefill', T: 33, S: 33, H: 4, Hkv: 2, Dh: 8, Dv: 8, queryStart: 0, kvLength: 33, window: 7, sinkScale: 2 },
  { name: 'sliding window, decode against a cache', T: 1, S: 48, H: 8, Hkv: 2, Dh: 16, Dv: 16, queryStart: 40, kvLength: 41, window: 5, sinkScale: 1 },
  { name: 'chunked prefill after a cache, window', T: 7, S: 31, H: 4, Hkv: 1, Dh: 17, Dv: 17, queryStart: 20, kvLength: 27, window: 9, sinkScale: 1 },
  { name: 'full attention, decode against a long cache', T: 1, S: 130, H: 4, Hkv: 4, Dh: 64, Dv: 64, queryStart: 127, kvLength: 128, sinkScale: 1 },
  // A sink of 12 takes nearly all the weight (outputs near 0); -30 leaves plain softmax; the first query sees one key.
  { name: 'dominant and vanishing sinks', T: 9, S: 9, H: 4, Hkv: 2, Dh: 8, Dv: 8, queryStart: 0, kvLength: 9, sinkScale: 1, extremes: [12, -30] },
];

/** Causal GQA attention whose softmax over each query's visible keys also holds the head's sink logit. */
export function sinkAttentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, sinks: ArrayLike<number>,
  c: SinkCase, scale: number,
): Float64Array {
  const out = new Float64Array(c.T * c.H * c.Dv);
  for (let t = 0; t < c.T; t++) {
    const position = c.queryStart + t;
    for (let h = 0; h < c.H; h++) {
      const kvHead = Math.floor(h / (c.H / c.Hkv));
      const visible: number[] = [];
      for (let j = 0; j < c.kvLength; j++) if (j <= position && (c.window === undefined || position - j < c.window)) visible.push(j);
      const logits = visible.map((j) => {
        let dot = 0;
        for (let d = 0; d < c.Dh; d++) dot += q[(t * c.H + h) * c.Dh + d]! * k[(j * c.Hkv + kvHead) * c.Dh + d]!;
        return dot * scale;
      });
      logits.push(sinks[h]!);
      const max = Math.max(...logits);
      const exps = logits.map((l) => Math.exp(l - max));
      const total = exps.reduce((a, b) => a + b, 0);
      for (let d = 0; d < c.Dv; d++) {
        let sum = 0;
        visible.forEach((j, i) => (sum += (exps[i]! / total) * v[(j * c.Hkv + kvHead) * c.Dv + d]!));
        out[(t * c.H + h) * c.Dv + d] = sum;
      }
    }
  }
  return out;
}

/** GPT-OSS's gate: x [R, 2F] (gate half, up half) → (clamp(up, ±limit) + 1) · g · σ(alpha · g), g = min(gate, limit). */
export function clampedGluRef(x: ArrayLike<number>, F: number, { alpha, limit }: ClampedGlu): Float64Array {
  const R = x.length / (2 * F);
  const out = new Float64Array(R * F);
  for (let r = 0; r < R; r++) {
    for (let f = 0; f < F; f++) {
      const gate = Math.min(x[r * 2 * F + f]!, limit);
      const up = Math.max(-limit, Math.min(x[r * 2 * F + F + f]!, limit));
      out[r * F + f] = (up + 1) * gate * (1 / (1 + Math.exp(-alpha * gate)));
    }
  }
  return out;
}

export function gptOssCases(ctx: SuiteContext): void {
  describe('GPT-OSS ops', () => {
    for (const c of SINK_CASES) {
      conformanceCase(ctx, `attention with sinks: ${c.name}`, async (rng, tag, b) => {
        for (const dtype of ctx.dtypes) {
          // One sequence (B = 1) whose queries sit at positions queryStart + t.
          const q = randomTensor(b, rng, [1, c.T, c.H, c.Dh], dtype);
          // Rows past kvLength hold stale values a kernel must not read.
          const k = floatTensor(b, [...rng.normals(c.kvLength * c.Hkv * c.Dh), ...new Array((c.S - c.kvLength) * c.Hkv * c.Dh).fill(300)], [1, c.S, c.Hkv, c.Dh], dtype);
          const v = floatTensor(b, [...rng.normals(c.kvLength * c.Hkv * c.Dv), ...new Array((c.S - c.kvLength) * c.Hkv * c.Dv).fill(-500)], [1, c.S, c.Hkv, c.Dv], dtype);
          const sinkValues = Array.from(rng.normals(c.H, c.sinkScale));
          (c.extremes ?? []).forEach((s, h) => (sinkValues[h] = s));
          const sinks = floatTensor(b, sinkValues, [c.H], 'f32');
          const positions = indexTensor(b, Array.from({ length: c.T }, (_, t) => c.queryStart + t), [1, c.T]);
          const opts: AttentionOptions = { scale: 1 / Math.sqrt(c.Dh), positions, sinks: sinks.t };
          if (c.window !== undefined) opts.window = c.window;
          const y = b.attention(q.t, k.t, v.t, opts);
          expectTensor(y, dtype, [1, c.T, c.H, c.Dv], tag);
          expectClose(await readFloat(y, tag), sinkAttentionRef(q.held, k.held, v.held, sinks.held, c, opts.scale), dtype, `${tag} ${dtype}`);
        }
      });
    }

    conformanceCase(ctx, 'siluMul with the clamped SwiGLU (GPT-OSS)', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [R, F, limit] of [[31, 33, 7], [1, 127, 7], [4, 1, 7], [17, 9, 0.75]] as const) {
          // N(0, 4²): many gates and ups beyond ±limit; plus explicit extremes in the last row.
          const values = [...rng.normals(R * 2 * F - 2, 4), 40, -40];
          const x = floatTensor(b, values, [R, 2 * F], dtype);
          const clamped = { alpha: 1.702, limit };
          const y = b.siluMul(x.t, clamped);
          expectTensor(y, dtype, [R, F], tag);
          expectClose(await readFloat(y, tag), clampedGluRef(x.held, F, clamped), dtype, `${tag} [${R}, ${2 * F}] limit ${limit}`);
        }
      }
    });

    conformanceCase(ctx, 'groupedLinear with a per-expert bias', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const counts of [[0, 5, 1, 0, 31, 2, 0], [1], [0, 129, 3]]) {
          const [Kin, Nout, E] = [33, 17, counts.length];
          const offsets = counts.reduce((o, n) => [...o, o.at(-1)! + n], [0]);
          const rows = offsets.at(-1)!;
          const x = randomTensor(b, rng, [rows, Kin], dtype);
          const w = randomTensor(b, rng, [E, Nout, Kin], dtype, 0.2);
          const bias = randomTensor(b, rng, [E, Nout], dtype);
          const y = b.groupedLinear(x.t, w.t, indexTensor(b, offsets), bias.t);
          expectTensor(y, dtype, [rows, Nout], tag);
          const expected = new Float64Array(rows * Nout);
          for (let e = 0; e < E; e++) {
            const xs = x.held.subarray(offsets[e]! * Kin, offsets[e + 1]! * Kin);
            const we = w.held.subarray(e * Nout * Kin, (e + 1) * Nout * Kin);
            expected.set(linearRef(xs, we, counts[e]!, Nout, Kin, bias.held.subarray(e * Nout, (e + 1) * Nout)), offsets[e]! * Nout);
          }
          expectClose(await readFloat(y, tag), expected, dtype, `${tag} counts [${counts}]`);
        }
      }
    });
  });
}

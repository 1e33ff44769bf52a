// Conformance cases for dense layers: linear (with/without bias, odd sizes, K = 1, one row, several weight tiles,
// decode sizes of 1..8 rows), linearSplit (stacked weights into parts), embedding, rmsNorm, rope (both pairings, partial rotary, attention scaling), attention
// (GQA, decode against a cache, chunked prefill, sliding window, Dv ≠ Dh, positions given per query: out of order,
// several sequences, sinks; cache rows past the positions hold garbage that must get no weight) and siluMul.
//
// Legend: M = rows of x, K = input features, N = output features, B = sequences, T = tokens per sequence,
// H = heads, Hkv = kv heads, Dh = head dim, Dv = value dim, S = cache rows per sequence.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { AttentionOptions, RopeOptions } from '../../src/backend/backend.ts';
import {
  conformanceCase, expectClose, expectExact, expectTensor, floatTensor, indexTensor, randomTensor, readFloat,
  type SuiteContext,
} from './check.ts';
import { attentionRef, linearRef, rmsNormRef, ropeRef, siluMulRef } from './reference.ts';
import type { Rng } from '../util/random.ts';

/**
 * [M, K, N] for linear: odd sizes, one row, K = 1, N = 1, exact multiples of 4 and 8, more than one weight tile,
 * and a long K (kernels that split K).
 */
const LINEAR_SHAPES = [
  [31, 33, 17], [1, 33, 127], [33, 127, 31], [5, 1, 7], [7, 19, 1], [16, 16, 8], [9, 127, 300], [127, 64, 33], [33, 1031, 65],
] as const;

/**
 * [M, K, N] for linear with 1..8 rows (the CUDA GEMV when K % 8 == 0, bias on odd M): every row count, odd N,
 * N = 1, K of one 16-byte vector, K past a whole round of loads, a long K with few outputs (Kin split across warps),
 * many outputs; and K % 8 != 0 (cuBLAS again on CUDA).
 */
const DECODE_LINEAR_SHAPES = [
  [1, 264, 129], [2, 256, 33], [3, 520, 7], [4, 64, 1], [5, 1032, 65], [6, 40, 513], [7, 8, 31], [8, 2048, 17],
  [1, 4096, 17], [2, 8192, 5], [1, 512, 1100], [1, 263, 31], [8, 30, 9],
] as const;

/**
 * [M, K, part widths] for linearSplit (attention's q, k, v): one row (one split GEMV launch on CUDA for bf16/f16)
 * with 3 and 2 parts, a long K, odd widths (units must not straddle parts); 5 rows (cuBLAS per part); K % 8 != 0 and
 * 4 parts (each part as `linear` does it on CUDA).
 */
const SPLIT_LINEAR_SHAPES = [
  [1, 4096, [64, 16, 16]], [1, 264, [129, 31, 33]], [1, 512, [40, 24]], [5, 264, [64, 16, 16]], [5, 33, [17, 7, 9]],
  [1, 263, [32, 8, 8]], [1, 64, [8, 8, 8, 8]], [2, 520, [1, 3]],
] as const;

export function denseCases(ctx: SuiteContext): void {
  describe('dense layers', () => {
    conformanceCase(ctx, 'linear without bias', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [M, K, N] of LINEAR_SHAPES) {
          const x = randomTensor(b, rng, [M, K], dtype);
          const w = randomTensor(b, rng, [N, K], dtype, 1 / Math.sqrt(K));
          const y = b.linear(x.t, w.t);
          expectTensor(y, dtype, [M, N], tag);
          expectClose(await readFloat(y, tag), linearRef(x.held, w.held, M, N, K), dtype, `${tag} [${M}, ${K}]·[${N}, ${K}]ᵀ`);
        }
      }
    });

    conformanceCase(ctx, 'linear with bias, and leading dims kept', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [M, K, N] of LINEAR_SHAPES) {
          const x = randomTensor(b, rng, [M, K], dtype);
          const w = randomTensor(b, rng, [N, K], dtype, 1 / Math.sqrt(K));
          const bias = randomTensor(b, rng, [N], dtype);
          const y = b.linear(x.t, w.t, bias.t);
          expectTensor(y, dtype, [M, N], tag);
          expectClose(await readFloat(y, tag), linearRef(x.held, w.held, M, N, K, bias.held), dtype, `${tag} [${M}, ${K}]·[${N}, ${K}]ᵀ`);
        }
        const x3 = randomTensor(b, rng, [3, 11, 33], dtype);
        const w3 = randomTensor(b, rng, [17, 33], dtype, 0.2);
        const y3 = b.linear(x3.t.reshape([3, 11, 33]), w3.t);
        expectTensor(y3, dtype, [3, 11, 17], tag);
        expectClose(await readFloat(y3, tag), linearRef(x3.held, w3.held, 33, 17, 33), dtype, `${tag} x [3, 11, 33]`);
      }
    });

    conformanceCase(ctx, 'linear at decode sizes (a few rows)', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [M, K, N] of DECODE_LINEAR_SHAPES) {
          const x = randomTensor(b, rng, [M, K], dtype);
          const w = randomTensor(b, rng, [N, K], dtype, 1 / Math.sqrt(K));
          const bias = M % 2 === 1 ? randomTensor(b, rng, [N], dtype) : undefined;
          const y = b.linear(x.t, w.t, bias?.t);
          expectTensor(y, dtype, [M, N], tag);
          expectClose(await readFloat(y, tag), linearRef(x.held, w.held, M, N, K, bias?.held), dtype, `${tag} [${M}, ${K}]·[${N}, ${K}]ᵀ${bias ? ' + bias' : ''}`);
        }
      }
    });

    conformanceCase(ctx, 'linearSplit: each part equals linear on its rows of w (2 to 4 parts, with and without bias)', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [i, [M, K, sizes]] of SPLIT_LINEAR_SHAPES.entries()) {
          const N = sizes.reduce((a, n) => a + n, 0);
          const x = randomTensor(b, rng, [M, K], dtype);
          const w = randomTensor(b, rng, [N, K], dtype, 1 / Math.sqrt(K));
          const bias = i % 2 === 0 ? randomTensor(b, rng, [N], dtype) : undefined;
          const parts = b.linearSplit(x.t, w.t, sizes, bias?.t);
          let at = 0;
          for (const [j, n] of sizes.entries()) {
            const what = `${tag} [${M}, ${K}]·[${N}, ${K}]ᵀ${bias ? ' + bias' : ''}, part ${j} (rows ${at}..${at + n})`;
            expectTensor(parts[j]!, dtype, [M, n], what);
            const wPart = w.held.slice(at * K, (at + n) * K);
            const ref = linearRef(x.held, wPart, M, n, K, bias?.held.slice(at, at + n));
            expectClose(await readFloat(parts[j]!, what), ref, dtype, what);
            at += n;
          }
          assert.equal(parts.length, sizes.length, `${tag}: ${parts.length} parts for ${sizes.length} sizes`);
        }
      }
    });

    conformanceCase(ctx, 'embedding picks rows exactly', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const [V, D] = [37, 33];
        const table = randomTensor(b, rng, [V, D], dtype);
        const ids = [0, V - 1, 5, 5, ...Array.from({ length: 27 }, () => rng.int(V))];
        const y = b.embedding(table.t, indexTensor(b, ids));
        expectTensor(y, dtype, [ids.length, D], tag);
        expectExact(await readFloat(y, tag), ids.flatMap((id) => [...table.held.subarray(id * D, (id + 1) * D)]), `${tag} ${dtype}`);
      }
    });

    conformanceCase(ctx, 'rmsNorm over the last dim', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const shape of [[31, 33], [1, 127], [5, 3, 17], [3, 1031]]) {
          const D = shape.at(-1)!;
          const x = randomTensor(b, rng, shape, dtype, 3);
          const w = floatTensor(b, rng.normals(D, 0.3, 1), [D], dtype);
          const y = b.rmsNorm(x.t, w.t, 1e-6);
          expectTensor(y, dtype, shape, tag);
          expectClose(await readFloat(y, tag), rmsNormRef(x.held, w.held, D, 1e-6), dtype, `${tag} [${shape}]`);
        }
        const tiny = floatTensor(b, new Array(33).fill(1e-4), [1, 33], dtype);
        const ones = floatTensor(b, new Array(33).fill(1), [33], dtype);
        expectClose(await readFloat(b.rmsNorm(tiny.t, ones.t, 1e-2), tag), rmsNormRef(tiny.held, ones.held, 33, 1e-2), dtype, `${tag} eps dominates`);
      }
    });

    conformanceCase(ctx, 'rope: both pairings, partial rotary, attention scaling', async (rng, tag, b) => {
      const [T, H, Dh] = [13, 3, 24];
      const positions = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 57, 130];
      const variants: RopeOptions[] = [
        { rotaryDim: 24, pairing: 'half', attentionScaling: 1 },
        { rotaryDim: 16, pairing: 'half', attentionScaling: 1 },
        { rotaryDim: 24, pairing: 'interleaved', attentionScaling: 1.25 },
        { rotaryDim: 8, pairing: 'interleaved', attentionScaling: 0.75 },
      ];
      for (const dtype of ctx.dtypes) {
        for (const opts of variants) {
          const invFreq = Float32Array.from({ length: opts.rotaryDim / 2 }, (_, i) => 10000 ** ((-2 * i) / opts.rotaryDim));
          const x = randomTensor(b, rng, [T, H, Dh], dtype);
          const y = b.rope(x.t, indexTensor(b, positions), b.upload(invFreq, [invFreq.length], 'f32'), opts);
          expectTensor(y, dtype, [T, H, Dh], tag);
          const expected = ropeRef(x.held, T, H, Dh, positions, invFreq, opts);
          expectClose(await readFloat(y, tag), expected, dtype, `${tag} ${JSON.stringify(opts)}`);
        }
      }
    });

    conformanceCase(ctx, 'siluMul on a fused gate/up projection', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [R, F] of [[31, 33], [1, 127], [4, 1]] as const) {
          const x = floatTensor(b, [...rng.normals(R * 2 * F - 2, 3), 40, -40], [R, 2 * F], dtype);
          const y = b.siluMul(x.t);
          expectTensor(y, dtype, [R, F], tag);
          expectClose(await readFloat(y, tag), siluMulRef(x.held, F), dtype, `${tag} [${R}, ${2 * F}]`);
        }
      }
    });
  });
}

interface AttentionCase {
  name: string;
  B: number; T: number; S: number; H: number; Hkv: number; Dh: number; Dv: number;
  /** positions[b][t]: the absolute position of query t of sequence b. */
  positions: number[][];
  window?: number;
  /** A per-head sink logit in every softmax (GPT-OSS). */
  sinks?: boolean;
}

/** Positions start, start + 1, …, start + T - 1. */
const run = (start: number, T: number): number[] => Array.from({ length: T }, (_, t) => start + t);

const ATTENTION_CASES: AttentionCase[] = [
  { name: 'prefill, GQA 6/2', B: 1, T: 33, S: 33, H: 6, Hkv: 2, Dh: 16, Dv: 16, positions: [run(0, 33)] },
  { name: 'decode against a cache', B: 1, T: 1, S: 64, H: 6, Hkv: 2, Dh: 16, Dv: 16, positions: [[40]] },
  { name: 'chunked prefill after a cache', B: 1, T: 7, S: 31, H: 4, Hkv: 1, Dh: 8, Dv: 8, positions: [run(20, 7)] },
  { name: 'multi-head (H = Hkv), odd head dim', B: 1, T: 31, S: 31, H: 3, Hkv: 3, Dh: 17, Dv: 17, positions: [run(0, 31)] },
  { name: 'sliding window, prefill', B: 1, T: 31, S: 31, H: 6, Hkv: 3, Dh: 8, Dv: 8, positions: [run(0, 31)], window: 8 },
  { name: 'sliding window, decode', B: 1, T: 1, S: 40, H: 2, Hkv: 1, Dh: 8, Dv: 8, positions: [[35]], window: 5 },
  { name: 'value dim differs from key dim', B: 1, T: 9, S: 9, H: 4, Hkv: 2, Dh: 24, Dv: 16, positions: [run(0, 9)] },
  { name: 'one token, one key', B: 1, T: 1, S: 1, H: 2, Hkv: 1, Dh: 8, Dv: 8, positions: [[0]] },
  { name: 'long prefill, head dim 64', B: 1, T: 130, S: 130, H: 4, Hkv: 2, Dh: 64, Dv: 64, positions: [run(0, 130)] },
  { name: 'decode against a long cache', B: 1, T: 1, S: 320, H: 8, Hkv: 2, Dh: 64, Dv: 64, positions: [[300]] },
  { name: 'sliding window, long prefill', B: 1, T: 129, S: 129, H: 2, Hkv: 1, Dh: 32, Dv: 32, positions: [run(0, 129)], window: 48 },
  { name: 'non-consecutive positions, out of order', B: 1, T: 6, S: 41, H: 4, Hkv: 2, Dh: 16, Dv: 16, positions: [[7, 0, 31, 3, 12, 31]] },
  { name: 'batch of 3, each sequence at its own positions', B: 3, T: 2, S: 37, H: 4, Hkv: 2, Dh: 16, Dv: 16, positions: [run(0, 2), run(17, 2), run(35, 2)] },
  { name: 'batch of 4, decode at the first and the last row', B: 4, T: 1, S: 131, H: 8, Hkv: 1, Dh: 32, Dv: 32, positions: [[0], [130], [64], [1]] },
  { name: 'batch of 2, sliding window, decode in a large cache', B: 2, T: 1, S: 300, H: 8, Hkv: 2, Dh: 64, Dv: 64, positions: [[250], [9]], window: 33 },
  { name: 'batch of 2, chunk, window and sinks, Dv ≠ Dh', B: 2, T: 3, S: 29, H: 6, Hkv: 2, Dh: 8, Dv: 12, positions: [run(4, 3), run(20, 3)], window: 6, sinks: true },
];

/**
 * k [B, S, Hkv, Dh] and v [B, S, Hkv, Dv] values: random in each sequence's rows up to its last position; past it
 * the rows hold what no query may give weight to — NaN keys (poison any score that is not masked away) and large
 * values (±500, visible in any output that weights them).
 */
function cacheValues(rng: Rng, c: AttentionCase, width: number, garbage: (i: number) => number): number[] {
  const values: number[] = [];
  for (let b = 0; b < c.B; b++) {
    const used = Math.max(...c.positions[b]!) + 1;
    values.push(...rng.normals(used * c.Hkv * width));
    for (let i = used * c.Hkv * width; i < c.S * c.Hkv * width; i++) values.push(garbage(i));
  }
  return values;
}

export function attentionCases(ctx: SuiteContext): void {
  describe('attention', () => {
    for (const c of ATTENTION_CASES) {
      conformanceCase(ctx, `attention: ${c.name}`, async (rng, tag, b) => {
        const positions = c.positions.flat();
        for (const dtype of ctx.dtypes) {
          const q = randomTensor(b, rng, [c.B, c.T, c.H, c.Dh], dtype);
          const k = floatTensor(b, cacheValues(rng, c, c.Dh, () => NaN), [c.B, c.S, c.Hkv, c.Dh], dtype);
          const v = floatTensor(b, cacheValues(rng, c, c.Dv, (i) => (i % 2 ? 500 : -500)), [c.B, c.S, c.Hkv, c.Dv], dtype);
          const sinks = c.sinks ? floatTensor(b, rng.normals(c.H, 1.5), [c.H], 'f32') : undefined;
          const opts: AttentionOptions = { scale: 1 / Math.sqrt(c.Dh), positions: indexTensor(b, positions, [c.B, c.T]) };
          if (c.window !== undefined) opts.window = c.window;
          if (sinks) opts.sinks = sinks.t;
          const y = b.attention(q.t, k.t, v.t, opts);
          expectTensor(y, dtype, [c.B, c.T, c.H, c.Dv], tag);
          const expected = attentionRef(q.held, k.held, v.held, c, positions, opts, sinks?.held);
          expectClose(await readFloat(y, tag), expected, dtype, `${tag} ${dtype}`);
        }
      });
    }
  });
}

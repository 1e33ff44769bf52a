// Conformance cases for dense layers: linear (with/without bias, odd sizes, K = 1, one row, several weight tiles),
// embedding, rmsNorm, rope (both pairings, partial rotary, attention scaling), attention (GQA, decode against a
// cache, chunked prefill, sliding window, Dv ≠ Dh) and siluMul.
//
// Legend: M = rows of x, K = input features, N = output features, T = tokens, H = heads, Hkv = kv heads,
// Dh = head dim, Dv = value dim, S = cache rows.
import { describe } from 'node:test';
import type { AttentionOptions, RopeOptions } from '../../src/backend/backend.ts';
import {
  conformanceCase, expectClose, expectExact, expectTensor, floatTensor, indexTensor, randomTensor, readFloat,
  type SuiteContext,
} from './check.ts';
import { attentionRef, linearRef, rmsNormRef, ropeRef, siluMulRef } from './reference.ts';

/**
 * [M, K, N] for linear: odd sizes, one row, K = 1, N = 1, exact multiples of 4 and 8, more than one weight tile,
 * and a long K (kernels that split K).
 */
const LINEAR_SHAPES = [
  [31, 33, 17], [1, 33, 127], [33, 127, 31], [5, 1, 7], [7, 19, 1], [16, 16, 8], [9, 127, 300], [127, 64, 33], [33, 1031, 65],
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
  T: number; S: number; H: number; Hkv: number; Dh: number; Dv: number;
  queryStart: number; kvLength: number; window?: number;
}

const ATTENTION_CASES: AttentionCase[] = [
  { name: 'prefill, GQA 6/2', T: 33, S: 33, H: 6, Hkv: 2, Dh: 16, Dv: 16, queryStart: 0, kvLength: 33 },
  { name: 'decode against a cache', T: 1, S: 64, H: 6, Hkv: 2, Dh: 16, Dv: 16, queryStart: 40, kvLength: 41 },
  { name: 'chunked prefill after a cache', T: 7, S: 31, H: 4, Hkv: 1, Dh: 8, Dv: 8, queryStart: 20, kvLength: 27 },
  { name: 'multi-head (H = Hkv), odd head dim', T: 31, S: 31, H: 3, Hkv: 3, Dh: 17, Dv: 17, queryStart: 0, kvLength: 31 },
  { name: 'sliding window, prefill', T: 31, S: 31, H: 6, Hkv: 3, Dh: 8, Dv: 8, queryStart: 0, kvLength: 31, window: 8 },
  { name: 'sliding window, decode', T: 1, S: 40, H: 2, Hkv: 1, Dh: 8, Dv: 8, queryStart: 35, kvLength: 36, window: 5 },
  { name: 'value dim differs from key dim', T: 9, S: 9, H: 4, Hkv: 2, Dh: 24, Dv: 16, queryStart: 0, kvLength: 9 },
  { name: 'one token, one key', T: 1, S: 1, H: 2, Hkv: 1, Dh: 8, Dv: 8, queryStart: 0, kvLength: 1 },
  { name: 'long prefill, head dim 64', T: 130, S: 130, H: 4, Hkv: 2, Dh: 64, Dv: 64, queryStart: 0, kvLength: 130 },
  { name: 'decode against a long cache', T: 1, S: 320, H: 8, Hkv: 2, Dh: 64, Dv: 64, queryStart: 300, kvLength: 301 },
  { name: 'sliding window, long prefill', T: 129, S: 129, H: 2, Hkv: 1, Dh: 32, Dv: 32, queryStart: 0, kvLength: 129, window: 48 },
];

export function attentionCases(ctx: SuiteContext): void {
  describe('attention', () => {
    for (const c of ATTENTION_CASES) {
      conformanceCase(ctx, `attention: ${c.name}`, async (rng, tag, b) => {
        for (const dtype of ctx.dtypes) {
          const q = randomTensor(b, rng, [c.T, c.H, c.Dh], dtype);
          // Rows past kvLength hold stale values a kernel must not read: large ones, so reading them shows.
          const kValues = [...rng.normals(c.kvLength * c.Hkv * c.Dh), ...new Array((c.S - c.kvLength) * c.Hkv * c.Dh).fill(300)];
          const vValues = [...rng.normals(c.kvLength * c.Hkv * c.Dv), ...new Array((c.S - c.kvLength) * c.Hkv * c.Dv).fill(-500)];
          const k = floatTensor(b, kValues, [c.S, c.Hkv, c.Dh], dtype);
          const v = floatTensor(b, vValues, [c.S, c.Hkv, c.Dv], dtype);
          const opts: AttentionOptions = { scale: 1 / Math.sqrt(c.Dh), queryStart: c.queryStart, kvLength: c.kvLength };
          if (c.window !== undefined) opts.window = c.window;
          const y = b.attention(q.t, k.t, v.t, opts);
          expectTensor(y, dtype, [c.T, c.H, c.Dv], tag);
          const expected = attentionRef(q.held, k.held, v.held, c.T, c.H, c.Hkv, c.Dh, c.Dv, opts);
          expectClose(await readFloat(y, tag), expected, dtype, tag);
        }
      });
    }
  });
}

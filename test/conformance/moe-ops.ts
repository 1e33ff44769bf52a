// Conformance cases for the MoE stages one by one: route (softmax-topk, normalize on/off, ties), sortByExpert
// (stable, offsets, empty experts), gatherRows, groupedLinear (experts with 0 rows; the edges of the tensor-core
// tiles the CUDA backend uses for bf16/f16), scatterAddWeighted.
//
// Legend: T = tokens, E = experts, K = top-k, N = routed rows (T*K), D = features, Kin/Nout = expert GEMM sizes.
import { describe } from 'node:test';
import type { Backend } from '../../src/backend/backend.ts';
import type { FloatDType } from '../../src/core/dtype.ts';
import type { Rng } from '../util/random.ts';
import {
  conformanceCase, expectClose, expectExact, expectTensor, floatTensor, indexTensor, randomTensor, readFloat,
  readIndex, type SuiteContext,
} from './check.ts';
import { linearRef, routeRef, sortByExpertRef } from './reference.ts';

/**
 * Router logits [T, E] whose values in each row are distinct multiples of 1/4 (exact in bf16 and f16), so the
 * top-k order is the same for every dtype and every backend; the row's spread is at most E/4.
 */
export function separatedLogits(rng: Rng, T: number, E: number): number[] {
  const logits: number[] = [];
  for (let t = 0; t < T; t++) logits.push(...permutation(rng, E).map((rank) => (rank - E / 2) / 4));
  return logits;
}

/** 0..n-1 in random order (Fisher–Yates). */
export function permutation(rng: Rng, n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Expert ids i32 [T, K]: K distinct experts per token, drawn from the first `used` of E (so some get 0 rows). */
export function randomExperts(rng: Rng, T: number, K: number, used: number): number[] {
  const ids: number[] = [];
  for (let t = 0; t < T; t++) {
    const row: number[] = [];
    while (row.length < K) {
      const e = rng.int(used);
      if (!row.includes(e)) row.push(e);
    }
    ids.push(...row);
  }
  return ids;
}

export function moeStageCases(ctx: SuiteContext): void {
  describe('MoE stages', () => {
    conformanceCase(ctx, 'route: softmax then top-k, normalize on and off', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [T, E, K] of [[31, 8, 2], [1, 60, 4], [17, 8, 1], [5, 7, 7], [257, 64, 8]] as const) {
          const logits = floatTensor(b, separatedLogits(rng, T, E), [T, E], dtype);
          for (const normalize of [true, false]) {
            const { weights, experts } = b.route(logits.t, { topK: K, scoring: 'softmax-topk', normalize });
            expectTensor(weights, 'f32', [T, K], tag);
            expectTensor(experts, 'i32', [T, K], tag);
            const expected = routeRef(logits.held, T, E, K, normalize);
            const what = `${tag} ${dtype} T=${T} E=${E} K=${K} normalize=${normalize}`;
            expectExact(await readIndex(experts, tag), expected.experts, `${what} experts`);
            expectClose(await readFloat(weights, tag), expected.weights, 'f32', `${what} weights`);
          }
        }
      }
    });

    conformanceCase(ctx, 'route: ties choose the lower expert id', async (_rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const rows = [[1, 3, 3, 0, 3], [2, 2, 2, 2, 2], [0, 5, -1, 5, 5]];
        const logits = floatTensor(b, rows.flat(), [3, 5], dtype);
        const { experts, weights } = b.route(logits.t, { topK: 2, scoring: 'softmax-topk', normalize: true });
        expectExact(await readIndex(experts, tag), [1, 2, 0, 1, 1, 3], `${tag} ${dtype} experts`);
        expectClose(await readFloat(weights, tag), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 'f32', `${tag} ${dtype} weights`);
      }
    });

    conformanceCase(ctx, 'sortByExpert: stable, with offsets and empty experts', async (rng, tag, b) => {
      for (const [T, K, E, used] of [[31, 2, 8, 6], [1, 1, 4, 4], [33, 4, 16, 16], [12, 3, 5, 3], [1000, 2, 64, 61]] as const) {
        const ids = randomExperts(rng, T, K, used);
        const { slots, offsets } = b.sortByExpert(indexTensor(b, ids, [T, K]), E);
        expectTensor(slots, 'i32', [T * K], tag);
        expectTensor(offsets, 'i32', [E + 1], tag);
        const expected = sortByExpertRef(ids, E);
        expectExact(await readIndex(slots, tag), expected.slots, `${tag} T=${T} K=${K} E=${E} slots`);
        expectExact(await readIndex(offsets, tag), expected.offsets, `${tag} T=${T} K=${K} E=${E} offsets`);
      }
    });

    conformanceCase(ctx, 'gatherRows copies token rows for sorted slots', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const [T, K, D] = [31, 3, 33];
        const x = randomTensor(b, rng, [T, D], dtype);
        const slots = permutation(rng, T * K);
        const y = b.gatherRows(x.t, indexTensor(b, slots), K);
        expectTensor(y, dtype, [T * K, D], tag);
        const expected = slots.flatMap((s) => [...x.held.subarray(Math.floor(s / K) * D, (Math.floor(s / K) + 1) * D)]);
        expectExact(await readFloat(y, tag), expected, `${tag} ${dtype}`);
      }
    });

    conformanceCase(ctx, 'groupedLinear: per-expert GEMM, experts with 0 rows', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        // Row counts per expert: empty first and last experts, one single-row expert, one with 31 rows; Kin 64 for
        // 16-byte-aligned rows and an expert with more rows than a GEMV pass holds (the GEMV in f32; on CUDA bf16/f16
        // take the tensor-core tiles there); N = 305 > 16·E for the CUDA-core tiles (Kin 33: no tensor cores).
        const cases: [number[], number][] = [
          [[0, 5, 1, 0, 31, 2, 0], 33], [[1], 33], [[0, 0, 9, 0], 33], [[0, 129, 3], 33], [[0, 20, 3, 0], 64], [[0, 300, 5], 33],
        ];
        for (const [counts, Kin] of cases) await checkGroupedLinear(b, rng, tag, dtype, { counts, Kin, Nout: 17, bias: false });
      }
    });

    // On CUDA (moe.ts groupedLinearPath) bf16/f16 with Kin % 8 == 0 take the tensor-core tiles once N > 4·E: 64-row
    // tiles below 128·E rows, 128-row tiles from there (mma128); on sm_90 the wgmma tiles of 128 × 256 (`wg`) from
    // 64·E rows. Each case's comment names its CUDA path (f32 always stays on the GEMV / CUDA-core tiles). The shapes
    // hit the kernels' edges: an expert straddling row tiles, Kin not a multiple of the 64-wide k step, Nout past one
    // column tile and odd Nout (element stores), N just above and at the GEMV cut, more than one group of 8 row
    // tiles, more than 256 experts (two rounds of the tile search), a last 128-row tile whose second half (the
    // second warpgroup's 64 rows) lies wholly past the expert's end.
    conformanceCase(ctx, 'groupedLinear: tensor-core tile edges, bias on and off', async (rng, tag, b) => {
      const many = Array.from({ length: 300 }, (_, e) => ({ 3: 900, 255: 700, 256: 1, 299: 800 })[e] ?? 0);
      const cases: GroupedCase[] = [
        { counts: [0, 70, 1, 0, 64, 9], Kin: 200, Nout: 136, bias: true },  // mma64: N 144, 70 rows over two tiles
        { counts: [300, 0, 129], Kin: 72, Nout: 17, bias: false },          // mma128 | wg: N 429 ≥ 128·3, odd Nout
        { counts: [0, 9, 8, 0], Kin: 64, Nout: 40, bias: true },            // mma64: N 17, just above 4·E
        { counts: [0, 12, 4, 0], Kin: 64, Nout: 40, bias: true },           // gemv: N 16 = 4·E, 12 rows: 2 passes
        { counts: [1100], Kin: 72, Nout: 136, bias: true },                 // mma128 | wg: 9 row tiles, two groups
        { counts: [120, 80, 0], Kin: 136, Nout: 264, bias: false },         // mma64 | wg: N 200 ≥ 64·3, Nout 256 + 8
        { counts: [520, 20, 0, 150], Kin: 200, Nout: 520, bias: true },     // mma128 | wg: last tiles of 8, 20, 22 rows
        { counts: [3000, 1, 0, 700, 37], Kin: 16, Nout: 1100, bias: true }, // mma128 | wg: 170 tiles, > 1 an SM; 1 k step
        { counts: many, Kin: 16, Nout: 8, bias: false },                    // mma64: 300 experts, 4 hit
        { counts: [200, 0, 100], Kin: 36, Nout: 24, bias: true },           // tiled: Kin % 8 != 0
        { counts: [0, 70, 1, 0, 64, 9], Kin: 36, Nout: 136, bias: false },  // gemv: Kin % 8 != 0, N ≤ 256
      ];
      for (const dtype of ctx.dtypes) {
        for (const c of cases) await checkGroupedLinear(b, rng, tag, dtype, c);
      }
    });

    conformanceCase(ctx, 'scatterAddWeighted sums weighted expert rows per token', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [T, K, D] of [[31, 2, 33], [1, 1, 7], [9, 4, 127], [200, 2, 64]] as const) {
          const slots = permutation(rng, T * K);
          const y = randomTensor(b, rng, [T * K, D], dtype);
          const weights = Float32Array.from({ length: T * K }, () => rng.next());
          const out = b.scatterAddWeighted(y.t, indexTensor(b, slots), b.upload(weights, [T, K], 'f32'), T);
          expectTensor(out, dtype, [T, D], tag);
          const expected = new Float64Array(T * D);
          slots.forEach((s, n) => {
            const t = Math.floor(s / K);
            for (let d = 0; d < D; d++) expected[t * D + d] += weights[s]! * y.held[n * D + d]!;
          });
          expectClose(await readFloat(out, tag), expected, dtype, `${tag} T=${T} K=${K} D=${D}`);
        }
      }
    });
  });
}

interface GroupedCase {
  counts: number[];
  Kin: number;
  Nout: number;
  bias: boolean;
}

/** groupedLinear on random x [N, Kin], w [E, Nout, Kin] (and bias [E, Nout]) against a float64 loop per expert. */
async function checkGroupedLinear(b: Backend, rng: Rng, tag: string, dtype: FloatDType, c: GroupedCase): Promise<void> {
  const { counts, Kin, Nout } = c;
  const E = counts.length;
  const offsets = counts.reduce((o, n) => [...o, o.at(-1)! + n], [0]);
  const rows = offsets.at(-1)!;
  const x = randomTensor(b, rng, [rows, Kin], dtype);
  const w = randomTensor(b, rng, [E, Nout, Kin], dtype, 0.2);
  const bias = c.bias ? randomTensor(b, rng, [E, Nout], dtype) : undefined;
  const y = b.groupedLinear(x.t, w.t, indexTensor(b, offsets), bias?.t);
  expectTensor(y, dtype, [rows, Nout], tag);
  const expected = new Float64Array(rows * Nout);
  for (let e = 0; e < E; e++) {
    const xs = x.held.subarray(offsets[e]! * Kin, offsets[e + 1]! * Kin);
    const we = w.held.subarray(e * Nout * Kin, (e + 1) * Nout * Kin);
    expected.set(linearRef(xs, we, counts[e]!, Nout, Kin, bias?.held.subarray(e * Nout, (e + 1) * Nout)), offsets[e]! * Nout);
  }
  const counted = E > 12 ? `${E} experts, ${rows} rows` : `counts [${counts}]`;
  expectClose(await readFloat(y, tag), expected, dtype, `${tag} ${counted} Kin ${Kin} Nout ${Nout} bias ${c.bias}`);
  for (const t of [x.t, w.t, y, bias?.t]) t?.dispose();
}

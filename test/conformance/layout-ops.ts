// Conformance cases for the layout ops multi-head latent attention is built from — sliceColumns, concatHeads
// (per-head and with one head broadcast to all, MLA's shared k_pe) — and the scalar scale (Granite's multipliers).
// Layout ops copy stored values, so they must be exact in every dtype.
//
// Legend: R = rows, C = columns, T = tokens, H = heads, A/B = per-head widths of the two parts.
import { describe } from 'node:test';
import {
  conformanceCase, expectClose, expectExact, expectTensor, randomTensor, readFloat, type SuiteContext,
} from './check.ts';

export function layoutCases(ctx: SuiteContext): void {
  describe('layout ops', () => {
    conformanceCase(ctx, 'sliceColumns copies a column range of every row', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [R, C, start, count] of [[31, 33, 0, 33], [1, 7, 6, 1], [33, 127, 64, 63], [5, 12, 0, 5], [129, 17, 3, 9]] as const) {
          const x = randomTensor(b, rng, [R, C], dtype);
          const y = b.sliceColumns(x.t, start, count);
          expectTensor(y, dtype, [R, count], tag);
          const expected: number[] = [];
          for (let r = 0; r < R; r++) for (let c = start; c < start + count; c++) expected.push(x.held[r * C + c]!);
          expectExact(await readFloat(y, tag), expected, `${tag} ${dtype} [${R}, ${C}] columns ${start}+${count}`);
        }
      }
    });

    conformanceCase(ctx, 'concatHeads joins per head; one head of b broadcasts to all', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [T, H, A, Bw, Hb] of [[31, 3, 5, 4, 3], [31, 3, 5, 4, 1], [1, 16, 128, 64, 1], [7, 1, 1, 9, 1], [33, 4, 2, 1, 4]] as const) {
          const a = randomTensor(b, rng, [T, H, A], dtype);
          const bt = randomTensor(b, rng, [T, Hb, Bw], dtype);
          const y = b.concatHeads(a.t, bt.t);
          expectTensor(y, dtype, [T, H, A + Bw], tag);
          const expected: number[] = [];
          for (let t = 0; t < T; t++) {
            for (let h = 0; h < H; h++) {
              for (let i = 0; i < A; i++) expected.push(a.held[(t * H + h) * A + i]!);
              const hb = Hb === 1 ? 0 : h;
              for (let i = 0; i < Bw; i++) expected.push(bt.held[(t * Hb + hb) * Bw + i]!);
            }
          }
          expectExact(await readFloat(y, tag), expected, `${tag} ${dtype} a [${T}, ${H}, ${A}] b [${T}, ${Hb}, ${Bw}]`);
        }
      }
    });

    conformanceCase(ctx, 'scale multiplies every element by a scalar', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        for (const [shape, s] of [[[31, 33], 0.015625], [[1, 7], -3.5], [[5, 3, 17], 12], [[129], 1 / 3]] as const) {
          const x = randomTensor(b, rng, [...shape], dtype);
          const y = b.scale(x.t, s);
          expectTensor(y, dtype, shape, tag);
          expectClose(await readFloat(y, tag), Array.from(x.held, (v) => v * s), dtype, `${tag} [${shape}] × ${s}`);
        }
      }
    });
  });
}

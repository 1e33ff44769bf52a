// Conformance cases for the MoE stages chained: route → sortByExpert → gatherRows → groupedLinear → siluMul →
// groupedLinear → scatterAddWeighted equals the plain per-token loop y_t = Σ_k w_tk · FFN_{e_tk}(x_t), and a
// one-expert MoE (E = 1, K = 1, normalize) equals the dense SwiGLU FFN.
//
// Legend: T = tokens, D = hidden, E = experts, K = top-k, F = expert FFN size, N = routed rows (T*K).
import { describe } from 'node:test';
import type { Backend } from '../../src/backend/backend.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import {
  conformanceCase, expectClose, expectTensor, floatTensor, randomTensor, readFloat, type SuiteContext,
} from './check.ts';
import { routeRef, swigluRef } from './reference.ts';
import { separatedLogits } from './moe-ops.ts';

/** The staged MoE layer on a backend. x [T, D], logits [T, E], gateUp [E, 2F, D], down [E, D, F] → [T, D]. */
function stagedMoe(b: Backend, x: Tensor, logits: Tensor, gateUp: Tensor, down: Tensor, topK: number, normalize: boolean): Tensor {
  const { weights, experts } = b.route(logits, { topK, scoring: 'softmax-topk', normalize });
  const { slots, offsets } = b.sortByExpert(experts, gateUp.dim(0));
  const routed = b.gatherRows(x, slots, topK);                  // [N, D]
  const hidden = b.siluMul(b.groupedLinear(routed, gateUp, offsets)); // [N, F]
  const y = b.groupedLinear(hidden, down, offsets);              // [N, D]
  return b.scatterAddWeighted(y, slots, weights, x.dim(0));
}

/** The plain loop, in float64: per token, route, then the weighted sum of each chosen expert's FFN. */
function perTokenMoe(
  x: Float64Array, logits: Float64Array, gateUp: Float64Array, down: Float64Array,
  T: number, D: number, E: number, F: number, K: number, normalize: boolean,
): Float64Array {
  const { experts, weights } = routeRef(logits, T, E, K, normalize);
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < K; j++) {
      const e = experts[t * K + j]!;
      const y = swigluRef(x.subarray(t * D, (t + 1) * D), gateUp.subarray(e * 2 * F * D, (e + 1) * 2 * F * D),
        down.subarray(e * D * F, (e + 1) * D * F), D, F);
      for (let d = 0; d < D; d++) out[t * D + d] += weights[t * K + j]! * y[d]!;
    }
  }
  return out;
}

export function moeChainCases(ctx: SuiteContext): void {
  describe('MoE chain', () => {
    const configs = [
      { T: 31, D: 33, E: 8, K: 2, F: 17, normalize: true },
      { T: 17, D: 16, E: 6, K: 3, F: 9, normalize: false },
      { T: 1, D: 33, E: 8, K: 2, F: 17, normalize: true },
      { T: 64, D: 31, E: 16, K: 4, F: 33, normalize: true },
    ];
    for (const c of configs) {
      const name = `route→sort→gather→groupedLinear→siluMul→groupedLinear→scatterAdd = per-token loop (T=${c.T} E=${c.E} K=${c.K})`;
      conformanceCase(ctx, name, async (rng, tag, b) => {
        for (const dtype of ctx.dtypes) {
          const x = randomTensor(b, rng, [c.T, c.D], dtype);
          const logits = floatTensor(b, separatedLogits(rng, c.T, c.E), [c.T, c.E], dtype);
          const gateUp = randomTensor(b, rng, [c.E, 2 * c.F, c.D], dtype, 1 / Math.sqrt(c.D));
          const down = randomTensor(b, rng, [c.E, c.D, c.F], dtype, 1 / Math.sqrt(c.F));
          const y = stagedMoe(b, x.t, logits.t, gateUp.t, down.t, c.K, c.normalize);
          expectTensor(y, dtype, [c.T, c.D], tag);
          const expected = perTokenMoe(x.held, logits.held, gateUp.held, down.held, c.T, c.D, c.E, c.F, c.K, c.normalize);
          expectClose(await readFloat(y, tag), expected, dtype, tag);
        }
      });
    }

    conformanceCase(ctx, 'a one-expert MoE (E=1, K=1, normalize) equals the dense SwiGLU FFN', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const [T, D, F] = [33, 31, 17];
        const x = randomTensor(b, rng, [T, D], dtype);
        const logits = randomTensor(b, rng, [T, 1], dtype, 3);
        const gateUp = randomTensor(b, rng, [1, 2 * F, D], dtype, 1 / Math.sqrt(D));
        const down = randomTensor(b, rng, [1, D, F], dtype, 1 / Math.sqrt(F));
        const moe = await readFloat(stagedMoe(b, x.t, logits.t, gateUp.t, down.t, 1, true), tag);
        const dense = b.linear(b.siluMul(b.linear(x.t, gateUp.t.reshape([2 * F, D]))), down.t.reshape([D, F]));
        expectTensor(dense, dtype, [T, D], tag);
        const denseValues = await readFloat(dense, tag);
        expectClose(moe, denseValues, dtype, `${tag} MoE vs dense on the backend`);
        const expected = new Float64Array(T * D);
        for (let t = 0; t < T; t++) expected.set(swigluRef(x.held.subarray(t * D, (t + 1) * D), gateUp.held, down.held, D, F), t * D);
        expectClose(denseValues, expected, dtype, `${tag} dense vs the float64 FFN`);
      }
    });
  });
}

// Conformance cases for captured steps (Backend.capture): a decode-like step — embedding of new ids, projections,
// the KV append with writeRows, attention by positions, an output projection — captured once and replayed with new
// ids, positions and cache rows written into its inputs gives, bit for bit, what running the step afresh gives,
// cache included. On CUDA this is a graph replay against eager kernels; on the CPU both run the same code.
//
// Legend: B = sequences, T = tokens per sequence, N = B·T, S = cache rows per sequence, V = vocabulary,
// D = hidden, H = heads, Hkv = kv heads, Dh = head dim.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import type { Backend } from '../../src/backend/backend.ts';
import type { FloatDType } from '../../src/core/dtype.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { conformanceCase, expectExact, floatTensor, randomTensor, readFloat, type SuiteContext } from './check.ts';
import type { Rng } from '../util/random.ts';

const [B, T, S, V, D, H, Hkv, Dh] = [2, 1, 23, 37, 33, 4, 2, 8];

interface StepWeights { table: Tensor; wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor }
interface StepInputs { ids: Tensor; positions: Tensor; rows: Tensor }

/** The step: x = table[ids]; q, k, v projections; k, v into the cache at `rows`; attention; output projection → [N, D]. */
function decodeStep(b: Backend, w: StepWeights, cache: { k: Tensor; v: Tensor }, inputs: StepInputs): Tensor {
  const N = B * T;
  const x = b.embedding(w.table, inputs.ids);
  const q = b.linear(x, w.wq).reshape([B, T, H, Dh]);
  b.writeRows(cache.k, b.linear(x, w.wk).reshape([N, Hkv, Dh]), inputs.rows);
  b.writeRows(cache.v, b.linear(x, w.wv).reshape([N, Hkv, Dh]), inputs.rows);
  const out = b.attention(q, cache.k.reshape([B, S, Hkv, Dh]), cache.v.reshape([B, S, Hkv, Dh]), {
    scale: Dh ** -0.5, positions: inputs.positions, window: 9,
  });
  return b.linear(out.reshape([N, H * Dh]), w.wo);
}

/** Host inputs of step `n`: the next id of each sequence, its position (sequence b starts at 3b), its cache row. */
function stepValues(rng: Rng, n: number) {
  const positions = Int32Array.from({ length: B * T }, (_, i) => 3 * Math.floor(i / T) + n);
  return {
    ids: Int32Array.from({ length: B * T }, () => rng.int(V)),
    positions,
    rows: Int32Array.from(positions, (p, i) => Math.floor(i / T) * S + p),
  };
}

function zeroCache(b: Backend, dtype: FloatDType) {
  return { k: b.zeros([B * S, Hkv, Dh], dtype), v: b.zeros([B * S, Hkv, Dh], dtype) };
}

export function captureCases(ctx: SuiteContext): void {
  describe('captured steps', () => {
    conformanceCase(ctx, 'capture: each replay after writing new inputs equals the step run afresh', async (rng, tag, b) => {
      for (const dtype of ctx.dtypes) {
        const w: StepWeights = {
          table: randomTensor(b, rng, [V, D], dtype).t,
          wq: randomTensor(b, rng, [H * Dh, D], dtype, 0.3).t, wk: randomTensor(b, rng, [Hkv * Dh, D], dtype, 0.3).t,
          wv: randomTensor(b, rng, [Hkv * Dh, D], dtype, 0.3).t, wo: randomTensor(b, rng, [D, H * Dh], dtype, 0.3).t,
        };
        const [replayCache, freshCache] = [zeroCache(b, dtype), zeroCache(b, dtype)];
        const inputs: StepInputs = { ids: b.zeros([B * T], 'i32'), positions: b.zeros([B, T], 'i32'), rows: b.zeros([B * T], 'i32') };
        const step = await b.capture(async () => decodeStep(b, w, replayCache, inputs));
        try {
          for (let n = 0; n < 12; n++) {
            const values = stepValues(rng, n);
            b.write(inputs.ids, values.ids);
            b.write(inputs.positions, values.positions);
            b.write(inputs.rows, values.rows);
            const replayed = await readFloat(await step.replay(), tag);
            const fresh = decodeStep(b, w, freshCache, {
              ids: b.upload(values.ids, [B * T], 'i32'), positions: b.upload(values.positions, [B, T], 'i32'),
              rows: b.upload(values.rows, [B * T], 'i32'),
            });
            expectExact(replayed, await readFloat(fresh, tag), `${tag} ${dtype} step ${n}`);
            expectExact(await readFloat(replayCache.k, tag), await readFloat(freshCache.k, tag), `${tag} ${dtype} keys after step ${n}`);
          }
          // The step really depends on its inputs: the last output is not all zeros or NaN.
          const last = await readFloat(await step.replay(), tag);
          assert.ok(last.some((x) => x !== 0) && last.every(Number.isFinite), `${tag} ${dtype}: replay output is degenerate`);
        } finally {
          step.dispose();
        }
      }
    });

    conformanceCase(ctx, 'capture: two captured steps live side by side and replay independently', async (rng, tag, b) => {
      const x = floatTensor(b, rng.normals(31), [31], 'f32');
      const doubled = await b.capture(async () => b.add(x.t, x.t));
      const squared = await b.capture(async () => b.mul(x.t, x.t));
      try {
        for (let n = 0; n < 3; n++) {
          const values = rng.normals(31);
          b.write(x.t, values);
          expectExact(await readFloat(await doubled.replay(), tag), Array.from(values, (v) => Math.fround(2 * v)), `${tag} doubled, round ${n}`);
          expectExact(await readFloat(await squared.replay(), tag), Array.from(values, (v) => Math.fround(v * v)), `${tag} squared, round ${n}`);
        }
      } finally {
        doubled.dispose();
        squared.dispose();
      }
    });
  });
}

// The conformance suite on the CPU reference backend, plus what only the CPU matmul promises: results are
// bitwise the same run to run and whatever the batch size (a decode row equals the same row in a prefill),
// and bf16/f16 weights are widened exactly when the activations are f32.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.ts';
import { Rng } from '../util/random.ts';
import { expectClose, randomTensor, readFloat } from './check.ts';
import { linearRef } from './reference.ts';
import { conformanceSuite } from './suite.ts';

conformanceSuite('cpu', () => new CpuBackend());

describe('cpu backend: matmul', () => {
  const b = new CpuBackend();

  it('linear is bitwise the same run to run and for any batch size', async () => {
    const seed = 7101;
    const rng = new Rng(seed);
    const [M, K, N] = [37, 129, 301];
    const x = randomTensor(b, rng, [M, K], 'f32');
    const w = randomTensor(b, rng, [N, K], 'f32');
    const bias = randomTensor(b, rng, [N], 'f32');
    const full = await readFloat(b.linear(x.t, w.t, bias.t), 'full');
    assert.deepEqual(await readFloat(b.linear(x.t, w.t, bias.t), 'again'), full, `seed ${seed}: second run differs`);
    for (const [start, count] of [[0, 1], [5, 1], [36, 1], [3, 3], [8, 4], [11, 5], [1, 33]] as const) {
      const part = await readFloat(b.linear(b.sliceRows(x.t, start, count), w.t, bias.t), 'part');
      assert.deepEqual(part, full.slice(start * N, (start + count) * N), `seed ${seed}: rows ${start}+${count} alone differ`);
    }
  });

  it('groupedLinear gives bitwise the rows linear gives per expert', async () => {
    const rng = new Rng(7102);
    const [Kin, Nout, counts] = [65, 19, [3, 0, 9, 1]];
    const offsets = counts.reduce((o, c) => [...o, o.at(-1)! + c], [0]);
    const x = randomTensor(b, rng, [offsets.at(-1)!, Kin], 'f32');
    const w = randomTensor(b, rng, [counts.length, Nout, Kin], 'f32');
    const grouped = await readFloat(b.groupedLinear(x.t, w.t, b.upload(Int32Array.from(offsets), [offsets.length], 'i32')), 'grouped');
    for (let e = 0; e < counts.length; e++) {
      if (counts[e] === 0) continue;
      const we = b.upload(Float32Array.from(w.held.subarray(e * Nout * Kin, (e + 1) * Nout * Kin)), [Nout, Kin], 'f32');
      const dense = await readFloat(b.linear(b.sliceRows(x.t, offsets[e]!, counts[e]!), we), 'dense');
      assert.deepEqual(grouped.slice(offsets[e]! * Nout, offsets[e + 1]! * Nout), dense, `seed 7102: expert ${e} differs`);
    }
  });

  it('bf16 and f16 weights with f32 activations are widened exactly, over several weight tiles', async () => {
    for (const dtype of ['bf16', 'f16'] as const) {
      const seed = 7103;
      const rng = new Rng(seed);
      const [M, K, N] = [6, 257, 300]; // 257 inputs: 124 weight rows per 128 KB tile, so 3 tiles
      const x = randomTensor(b, rng, [M, K], 'f32');
      const w = randomTensor(b, rng, [N, K], dtype, 0.1);
      const y = b.linear(x.t, w.t);
      assert.equal(y.dtype, 'f32');
      expectClose(await readFloat(y, 'mixed'), linearRef(x.held, w.held, M, N, K), 'f32', `[linear f32 × ${dtype} weights, seed ${seed}]`);
    }
  });
});

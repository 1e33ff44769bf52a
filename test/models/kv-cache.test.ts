// Incremental decoding with the KV cache gives the same logits as one full forward pass, for every family
// (the Mixtral config has a sliding window shorter than the sequence, so the window is exercised too).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import { relativeError } from '../util/compare.ts';
import { Rng } from '../util/random.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';

describe('KV cache', () => {
  for (const [family, config] of Object.entries(TINY_CONFIGS)) {
    it(`${family}: prefill + one-token steps and uneven chunks equal a full forward`, async () => {
      const model = await loadModel(writeTinyCheckpoint(config, 'fused', 7));
      const rng = new Rng(11);
      const ids = Int32Array.from({ length: 13 }, () => rng.int(model.vocabSize));
      const full = (await (await model.forward(ids, model.newCache())).read()) as Float32Array;
      const V = model.vocabSize;
      for (const chunks of [[5, 1, 1, 1, 1, 1, 1, 1, 1], [3, 4, 6], [1, 12]]) {
        const cache = model.newCache();
        let at = 0;
        for (const n of chunks) {
          const logits = (await (await model.forward(ids.subarray(at, at + n), cache)).read()) as Float32Array;
          const err = relativeError(logits, full.subarray(at * V, (at + n) * V));
          assert.ok(err < 1e-5, `${family} chunks ${chunks}: rows ${at}..${at + n} differ, rel err ${err}`);
          at += n;
        }
        assert.equal(cache.length, ids.length);
      }
    });
  }

  it('lastTokens returns only the final rows, equal to the full forward', async () => {
    const model = await loadModel(writeTinyCheckpoint(TINY_CONFIGS['qwen2_moe']!, 'hub', 3));
    const ids = Int32Array.from([4, 8, 15, 16, 23, 42]);
    const full = (await (await model.forward(ids, model.newCache())).read()) as Float32Array;
    const last = await model.forward(ids, model.newCache(), { lastTokens: 2 });
    assert.deepEqual(last.shape, [2, model.vocabSize]);
    const err = relativeError((await last.read()) as Float32Array, full.subarray(4 * model.vocabSize));
    assert.ok(err < 1e-6, `rel err ${err}`);
  });
});

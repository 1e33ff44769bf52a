// The decode benchmark's floor (src/bench/decode-floor.ts) against the bytes written out by hand from the published
// shapes of Mixtral-8x7B and Qwen3-30B-A3B, and its greedy pick (argmaxRows) against a plain loop.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { argmaxRows } from '../../src/bench/decode.ts';
import { decodeStepBytes } from '../../src/bench/decode-floor.ts';
import { ModelConfig } from '../../src/io/config.ts';
import { architectureOf } from '../../src/models/registry.ts';
import { Rng } from '../util/random.ts';

const specOf = (name: string) => architectureOf(ModelConfig.read(fileURLToPath(new URL(`../../src/bench/configs/${name}`, import.meta.url))));

describe('decode floor', () => {
  it('Mixtral-8x7B, batch 1, top-2 experts per layer, 200 cached positions', () => {
    const [D, F, V, L, kv] = [4096, 14336, 32000, 32, 8 * 128];
    const perLayer = 2 * D * D + 2 * D * kv + 2 * D + 8 * D + 2 * 3 * D * F; // q, o, k, v; 2 norms; router; 2 experts
    const weights = L * perLayer + D + V * D + D; // final norm, LM head, one embedding row
    const got = decodeStepBytes(specOf('Mixtral-8x7B'), 2, 1, new Array(L).fill(2), 200);
    assert.equal(got.weightBytes, 2 * weights);
    assert.equal(got.kvBytes, 2 * L * 200 * 2 * kv); // keys and values, bf16
  });

  it('Qwen3-30B-A3B, batch 32, 100.5 distinct experts per layer on average', () => {
    const [D, F, V, L, q, kv, Dh] = [2048, 768, 151936, 48, 32 * 128, 4 * 128, 128];
    const perLayer = 2 * D * q + 2 * D * kv + 2 * Dh + 2 * D + 128 * D; // attention, q/k norms, 2 norms, router
    const distinct = Array.from({ length: L }, (_, l) => (l % 2 ? 101 : 100));
    const weights = L * perLayer + 100.5 * L * 3 * D * F + D + V * D + 32 * D;
    const got = decodeStepBytes(specOf('Qwen3-30B-A3B'), 2, 32, distinct, 130);
    assert.equal(got.weightBytes, 2 * weights);
    assert.equal(got.kvBytes, 2 * L * 32 * 130 * 2 * kv);
  });

  it('a sliding window caps the cached positions read', () => {
    const spec = specOf('Mixtral-8x7B');
    const windowed = { ...spec, layers: spec.layers.map((l) => ({ ...l, slidingWindow: 64 })) };
    assert.equal(decodeStepBytes(windowed, 2, 1, [], 200).kvBytes, decodeStepBytes(spec, 2, 1, [], 64).kvBytes);
  });

  it('argmaxRows picks the first largest logit of each row', () => {
    const rng = new Rng(5);
    const [B, V] = [5, 37];
    const logits = Float32Array.from({ length: B * V }, () => Math.round(rng.normal() * 3));
    const want = Array.from({ length: B }, (_, b) => {
      const row = Array.from(logits.subarray(b * V, (b + 1) * V));
      return row.indexOf(Math.max(...row));
    });
    assert.deepEqual([...argmaxRows(logits, B, V)], want);
  });
});

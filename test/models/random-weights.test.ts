// Random-weight models (src/models/random-weights.ts) go through the real builder: for every family each parameter
// is made exactly once (bytes made = the parameter count inspect computes), norms are 1 and biases 0 as transformers
// initialises them, linear weights have the std asked for, the same seed gives the same logits, and a bf16 forward
// gives finite logits that are not all equal. The full-size configs the decode benchmark builds have the Hub's
// published parameter counts.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.ts';
import { ModelConfig } from '../../src/io/config.ts';
import { countParameters } from '../../src/models/inspect.ts';
import { RandomWeights, randomModel } from '../../src/models/random-weights.ts';
import { architectureOf } from '../../src/models/registry.ts';
import { TINY_CONFIGS } from '../util/tiny-checkpoint.ts';

const config = (raw: Record<string, unknown>) => ModelConfig.fromObject('tiny/config.json', raw);

async function logitsOf(raw: Record<string, unknown>, dtype: 'f32' | 'bf16', seed: number): Promise<Float32Array> {
  const { model } = randomModel(config(raw), { dtype, seed });
  const logits = await model.forward(Int32Array.from([3, 1, 4, 1, 5, 9]), model.newCache());
  return (await logits.read()) as Float32Array;
}

describe('random weights', () => {
  for (const [family, raw] of Object.entries(TINY_CONFIGS)) {
    it(`${family}: every parameter made once; bf16 logits finite and not all equal; same seed, same logits`, async () => {
      const { model, weights } = randomModel(config(raw), { dtype: 'f32' });
      assert.equal(weights.bytes, 4 * countParameters(model.spec, false).total, `${family}: bytes made`);
      const logits = await logitsOf(raw, 'bf16', 1);
      assert.ok(logits.every(Number.isFinite), `${family}: non-finite logits`);
      assert.ok(Math.max(...logits) > Math.min(...logits), `${family}: all logits equal`);
      assert.deepEqual(await logitsOf(raw, 'bf16', 1), logits, `${family}: seed 1 twice differs`);
      assert.notDeepEqual(await logitsOf(raw, 'bf16', 2), logits, `${family}: seeds 1 and 2 agree`);
    });
  }

  it('norm weights are 1, biases 0, other weights N(0, std)', async () => {
    const spec = architectureOf(config(TINY_CONFIGS['qwen2_moe']!));
    const w = new RandomWeights(new CpuBackend(), spec, 'bf16', 0.05);
    assert.deepEqual([...await w.tensor('model.layers.0.self_attn.q_norm.weight', [7]).read()], new Array(7).fill(1));
    assert.deepEqual([...await w.tensor('model.layers.0.self_attn.q_proj.bias', [5]).read()], new Array(5).fill(0));
    const values = Array.from(await w.tensor('model.layers.0.self_attn.q_proj.weight', [200, 101]).read());
    const sd = Math.sqrt(values.reduce((a, v) => a + v * v, 0) / values.length);
    assert.ok(Math.abs(sd / 0.05 - 1) < 0.02, `std ${sd}, asked for 0.05`);
    const other = Array.from(await w.tensor('model.layers.1.self_attn.q_proj.weight', [200, 101]).read());
    assert.notDeepEqual(other, values, 'two tensors of the same shape hold the same values');
    assert.equal(w.has('lm_head.weight'), !spec.tieWordEmbeddings);
  });

  it("the decode benchmark's full-size configs have the parameter counts their model cards give", () => {
    // Billions, as the model cards round them: Mixtral 46.7 B with 12.9 B active, Qwen3-30B-A3B 30.5 B with 3.3 B.
    for (const [name, total, active] of [['Mixtral-8x7B', 46.7, 12.9], ['Qwen3-30B-A3B', 30.5, 3.3]] as const) {
      const spec = architectureOf(ModelConfig.read(fileURLToPath(new URL(`../../src/bench/configs/${name}`, import.meta.url))));
      const billions = (active: boolean) => countParameters(spec, active).total / 1e9;
      assert.ok(Math.abs(billions(false) - total) < 0.05, `${name}: ${billions(false)} B parameters, the card says ${total}`);
      assert.ok(Math.abs(billions(true) - active) < 0.06, `${name}: ${billions(true)} B active, the card says ${active}`);
    }
  });
});

// Parity with Hugging Face transformers: for every fixture under test/fixtures (made by scripts/make_fixtures.py
// and scripts/train_default_model.py on the GPU machine), the CPU backend's logits match transformers' float32
// logits within 1e-4 relative error per sequence, and greedy generation reproduces transformers' continuation.
// MOETS_TEST_DEVICE=cuda runs the same checks on the CUDA backend (on a GPU machine; f32 weights).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generate } from '../../src/generate/generate.ts';
import { loadModel } from '../../src/models/load.ts';
import { relativeError } from '../util/compare.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DEVICE = process.env['MOETS_TEST_DEVICE'] === 'cuda' ? 'cuda' : 'cpu';
const FIXTURES = join(ROOT, 'test', 'fixtures');

interface Expected {
  model_dir?: string;
  cases: { input_ids: number[]; logits_file: string; shape: [number, number] }[];
  greedy: { prompt_ids: number[]; new_ids: number[] };
}

const fixtureDirs = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'expected.json'))).sort()
  : [];

describe('parity with transformers', () => {
  it('fixtures exist for every supported family', () => {
    for (const family of ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'granitemoe', 'deepseek_v3']) {
      for (const layout of ['hub', 'fused']) {
        assert.ok(fixtureDirs.includes(`${family}-${layout}`), `missing fixture ${family}-${layout}`);
      }
    }
    // GPT-OSS's two layouts in transformers: plain experts, and the MXFP4 blocks/scales of the released checkpoints.
    for (const layout of ['fused', 'mxfp4']) assert.ok(fixtureDirs.includes(`gpt_oss-${layout}`), `missing fixture gpt_oss-${layout}`);
    assert.ok(fixtureDirs.includes('default'), 'missing the trained default-model fixture');
  });

  for (const name of fixtureDirs) {
    it(`${name}: logits within 1e-4 and the greedy continuation matches`, async () => {
      const dir = join(FIXTURES, name);
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
      const model = await loadModel(expected.model_dir ? join(ROOT, expected.model_dir) : dir, { device: DEVICE });
      for (const c of expected.cases) {
        const bytes = readFileSync(join(dir, c.logits_file));
        const reference = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        const logits = await model.forward(Int32Array.from(c.input_ids), model.newCache());
        assert.deepEqual(logits.shape, c.shape);
        const actual = (await logits.read()) as Float32Array;
        const err = relativeError(actual, reference);
        assert.ok(err <= 1e-4, `${name}, ${c.input_ids.length} tokens: relative error ${err.toExponential(2)} > 1e-4`);
      }
      const { tokens } = await generate(model, expected.greedy.prompt_ids, {
        maxNewTokens: expected.greedy.new_ids.length, temperature: 0, stopTokenIds: [],
      });
      assert.ok(expected.greedy.new_ids.length >= 32);
      assert.deepEqual(tokens, expected.greedy.new_ids, `${name}: greedy continuation differs`);
    });
  }

  // On a GPU the trained model also runs in bf16 (weights and activations), as it was trained: its greedy
  // continuation must still be transformers'. (The CPU computes in f32 whatever the storage.)
  it('default model in bf16: the greedy continuation matches', { skip: DEVICE === 'cpu' ? 'bf16 compute is a GPU path' : false }, async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'default', 'expected.json'), 'utf8')) as Expected;
    const model = await loadModel(join(ROOT, expected.model_dir!), { device: DEVICE, dtype: 'bf16' });
    const { tokens } = await generate(model, expected.greedy.prompt_ids, {
      maxNewTokens: expected.greedy.new_ids.length, temperature: 0, stopTokenIds: [],
    });
    assert.deepEqual(tokens, expected.greedy.new_ids);
  });
});

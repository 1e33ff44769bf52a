// GPT-OSS: the config mapping (the released gpt-oss-20b config.json and GptOssConfig's defaults), the expert
// layout conversion (interleaved, transposed, MXFP4) against the stored tensors, and whole-model logits against a
// float64 plain-loop forward written from transformers' code (test/util/gpt-oss-reference.ts), plain and MXFP4.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { getBackend } from '../../src/backend/registry.ts';
import { bf16ToF32, f32ToBf16 } from '../../src/core/dtype.ts';
import { MoetsError } from '../../src/core/errors.ts';
import { Checkpoint } from '../../src/io/checkpoint.ts';
import { ModelConfig } from '../../src/io/config.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/models/load.ts';
import { inspectModel } from '../../src/models/inspect.ts';
import { architectureOf } from '../../src/models/registry.ts';
import { WeightReader } from '../../src/models/weights.ts';
import { relativeError } from '../util/compare.ts';
import { defaultYarn, type GptOssConfig, gptOssReferenceLogits, readGptOssTensors } from '../util/gpt-oss-reference.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';

/** openai/gpt-oss-20b's config.json as released. */
const GPT_OSS_20B = {
  architectures: ['GptOssForCausalLM'], attention_bias: true, attention_dropout: 0.0, eos_token_id: 200002,
  experts_per_token: 4, head_dim: 64, hidden_act: 'silu', hidden_size: 2880, initial_context_length: 4096,
  initializer_range: 0.02, intermediate_size: 2880,
  layer_types: Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')),
  max_position_embeddings: 131072, model_type: 'gpt_oss', num_attention_heads: 64, num_experts_per_tok: 4,
  num_hidden_layers: 24, num_key_value_heads: 8, num_local_experts: 32, output_router_logits: false, pad_token_id: 199999,
  quantization_config: { modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'], quant_method: 'mxfp4' },
  rms_norm_eps: 1e-05,
  rope_scaling: { beta_fast: 32.0, beta_slow: 1.0, factor: 32.0, original_max_position_embeddings: 4096, rope_type: 'yarn', truncate: false },
  rope_theta: 150000, router_aux_loss_coef: 0.9, sliding_window: 128, swiglu_limit: 7.0, tie_word_embeddings: false,
  transformers_version: '4.55.0.dev0', use_cache: true, vocab_size: 201088,
};

const TINY = TINY_CONFIGS['gpt_oss']! as unknown as GptOssConfig & Record<string, unknown>;
const specOf = (raw: Record<string, unknown>) => architectureOf(ModelConfig.fromObject('config.json', raw));
const IDS = [5, 17, 3, 96, 42, 42, 8, 0, 61, 33, 7, 90, 12];

async function logitsOf(dir: string): Promise<Float32Array> {
  const model = await loadModel(dir);
  return (await (await model.forward(Int32Array.from(IDS), model.newCache())).read()) as Float32Array;
}

describe('gpt_oss', () => {
  it('maps the released gpt-oss-20b config', () => {
    const s = specOf(GPT_OSS_20B);
    assert.deepEqual(s.layers.map((l) => l.slidingWindow), Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? 128 : undefined)));
    const a = s.attention;
    assert.deepEqual([a.numHeads, a.numKvHeads, a.headDim, a.qkvBias, a.outputBias, a.sinks, a.qkNorm], [64, 8, 64, true, true, true, 'none']);
    assert.equal(a.scale ?? 1 / 8, 1 / 8);
    assert.deepEqual([a.rope.type, a.rope.theta, a.rope.pairing, a.rope.rotaryDim], ['yarn', 150000, 'half', 64]);
    assert.ok(Math.abs(a.rope.attentionScaling - (0.1 * Math.log(32) + 1)) < 1e-12);
    const yarn = defaultYarn(64).invFreq;
    a.rope.invFreq.forEach((f, i) => assert.ok(Math.abs(f - yarn[i]!) <= 1e-6 * yarn[i]!, `invFreq[${i}] ${f} vs ${yarn[i]}`));
    const ffn = s.layers[0]!.ffn;
    assert.ok(ffn.kind === 'moe');
    assert.deepEqual([ffn.numExperts, ffn.expertIntermediateSize, ffn.router, ffn.routerBias, ffn.expertBias, ffn.activation],
      [32, 2880, { scoring: 'topk-softmax', topK: 4, normalize: false }, true, true, { alpha: 1.702, limit: 7 }]);
    assert.deepEqual([s.vocabSize, s.hiddenSize, s.rmsNormEps, s.tieWordEmbeddings, s.eosTokenIds], [201088, 2880, 1e-5, false, [200002]]);
    assert.equal(s.weights.expertFormat, 'gpt-oss');
    assert.equal('model.layers.3.mlp.router.bias'.replace(...s.weights.renames[0]!), 'model.layers.3.mlp.gate.bias');
  });

  it('fills in GptOssConfig defaults: YaRN, even layers sliding (128), head_dim 64; sliding_window null means none', () => {
    const { layer_types: _, rope_scaling: __, rope_theta: ___, head_dim: ____, sliding_window: _____, ...bare } = GPT_OSS_20B;
    const s = specOf(bare);
    assert.deepEqual(s.layers.slice(0, 4).map((l) => l.slidingWindow), [128, undefined, 128, undefined]);
    assert.deepEqual([s.attention.headDim, s.attention.rope.type, s.attention.rope.theta], [64, 'yarn', 150000]);
    assert.deepEqual([...s.attention.rope.invFreq], [...specOf(GPT_OSS_20B).attention.rope.invFreq]);
    assert.ok(specOf({ ...GPT_OSS_20B, sliding_window: null }).layers.every((l) => l.slidingWindow === undefined));
    assert.throws(() => specOf({ ...GPT_OSS_20B, num_experts_per_tok: 33 }), (e) => e instanceof MoetsError && /num_experts_per_tok/.test(e.message));
  });

  it('reads experts into the canonical layout: gate rows then up rows, [E, 2F, D] and [E, D, F]', async () => {
    const dir = writeTinyCheckpoint(TINY, 'fused', 3);
    const [E, D, F] = [TINY.num_local_experts, TINY.hidden_size, TINY.intermediate_size];
    const stored = readGptOssTensors(dir);
    const r = new WeightReader(Checkpoint.open(dir), getBackend('cpu'), 'f32', specOf(TINY).weights);
    const p = 'model.layers.1.mlp';
    const { gateUp, down } = r.experts(`${p}.experts`, E, F, D);
    const [gu, dn, gub] = await Promise.all([gateUp.read(), down.read(), r.tensor(`${p}.experts.gate_up_proj_bias`, [E, 2 * F]).read()]);
    const [sgu, sdn, sgub] = ['gate_up_proj', 'down_proj', 'gate_up_proj_bias'].map((n) => stored.get(`${p}.experts.${n}`)!.values);
    for (let e = 0; e < E; e++) {
      for (let f = 0; f < F; f++) {
        assert.equal(gub[e * 2 * F + f], sgub![e * 2 * F + 2 * f], 'gate bias');
        assert.equal(gub[e * 2 * F + F + f], sgub![e * 2 * F + 2 * f + 1], 'up bias');
        for (let d = 0; d < D; d++) {
          assert.equal(gu[(e * 2 * F + f) * D + d], sgu![(e * D + d) * 2 * F + 2 * f], `gate [${e}, ${f}, ${d}]`);
          assert.equal(gu[(e * 2 * F + F + f) * D + d], sgu![(e * D + d) * 2 * F + 2 * f + 1], `up [${e}, ${f}, ${d}]`);
          assert.equal(dn[(e * D + d) * F + f], sdn![(e * F + f) * D + d], `down [${e}, ${d}, ${f}]`);
        }
      }
    }
    assert.equal(r.tensor(`${p}.gate.bias`, [E]).size, E, 'router bias under its canonical name');
  });

  it('logits equal a float64 plain-loop forward (sinks, sliding window < sequence, biases, clamped SwiGLU)', async () => {
    const config = { ...TINY, swiglu_limit: 0.5 }; // a low limit so the clamps bite
    const dir = writeTinyCheckpoint(config, 'fused', 5);
    const expected = gptOssReferenceLogits(config, readGptOssTensors(dir), IDS);
    const err = relativeError(await logitsOf(dir), expected);
    assert.ok(err < 1e-5, `relative error ${err.toExponential(2)}`);
  });

  it('MXFP4 experts: logits equal the reference and the plain checkpoint holding transformers\' dequantized weights', async () => {
    const dir = writeTinyCheckpoint(TINY, 'mxfp4', 9);
    const tensors = readGptOssTensors(dir);
    const actual = await logitsOf(dir);
    const err = relativeError(actual, gptOssReferenceLogits(TINY, tensors, IDS));
    assert.ok(err < 1e-5, `relative error ${err.toExponential(2)}`);
    const plain = mkdtempSync(join(tmpdir(), 'moets-gpt-oss-plain-'));
    copyFileSync(join(dir, 'config.json'), join(plain, 'config.json'));
    writeSafetensors(join(plain, 'model.safetensors'), [...tensors].map(([name, { shape, values }]) => ({
      name, dtype: 'F32' as const, shape, data: new Uint8Array(Float32Array.from(values).buffer),
    })));
    assert.deepEqual(await logitsOf(plain), actual);
  });

  it('a bf16 checkpoint converts as the f32 one holding the same values (2-byte layout conversion)', async () => {
    const tensors = readGptOssTensors(writeTinyCheckpoint(TINY, 'fused', 6));
    const bits = new Map([...tensors].map(([name, { values }]) => [name, Uint16Array.from(values, (v) => f32ToBf16(v))]));
    const write = (bf16: boolean) => {
      const dir = mkdtempSync(join(tmpdir(), 'moets-gpt-oss-'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify(TINY));
      writeSafetensors(join(dir, 'model.safetensors'), [...tensors].map(([name, { shape }]) => {
        const b = bits.get(name)!;
        const data = bf16 ? new Uint8Array(b.buffer) : new Uint8Array(Float32Array.from(b, (x) => bf16ToF32(x)).buffer);
        return { name, dtype: bf16 ? 'BF16' as const : 'F32' as const, shape, data };
      }));
      return dir;
    };
    assert.deepEqual(await logitsOf(write(true)), await logitsOf(write(false)));
  });

  it('inspect counts sinks, router and expert biases, and MXFP4 blocks as two values per byte', () => {
    const [E, K, D, F, L] = [TINY.num_local_experts, TINY.num_experts_per_tok, TINY.hidden_size, TINY.intermediate_size, TINY.num_hidden_layers];
    const perExpert = 2 * F * D + 2 * F + F * D + D; // gate_up_proj + its bias, down_proj + its bias
    for (const layout of ['fused', 'mxfp4'] as const) {
      const r = inspectModel(writeTinyCheckpoint(TINY, layout, 4));
      assert.equal(r.parameters.total, r.parameters.stored, layout);
      assert.equal(r.parameters.experts, L * E * perExpert, layout);
      assert.equal(r.parameters.activePerToken, r.parameters.total - L * (E - K) * perExpert, layout);
      assert.equal(r.storedDTypes['MXFP4'], layout === 'mxfp4' ? L * E * 3 * D * F : undefined, layout);
    }
  });

  it('says which tensor is wrong when an MXFP4 checkpoint is incomplete or mis-shaped', async () => {
    const dir = writeTinyCheckpoint(TINY, 'mxfp4', 2);
    const ckpt = Checkpoint.open(dir);
    const kept = ckpt.names().filter((n) => n !== 'model.layers.2.mlp.experts.down_proj_scales')
      .map((name) => ({ name, dtype: ckpt.info(name).dtype, shape: ckpt.info(name).shape, data: ckpt.readBytes(name).slice() }));
    ckpt.close();
    writeSafetensors(join(dir, 'model.safetensors'), kept);
    await assert.rejects(loadModel(dir), (e) => e instanceof MoetsError && /missing tensor model\.layers\.2\.mlp\.experts\.down_proj_scales/.test(e.message));
    const wide = writeTinyCheckpoint(TINY, 'mxfp4', 2);
    copyFileSync(join(writeTinyCheckpoint({ ...TINY, intermediate_size: 64 }, 'fused', 2), 'config.json'), join(wide, 'config.json'));
    await assert.rejects(loadModel(wide), (e) => e instanceof MoetsError && /gate_up_proj_blocks has shape \[4, 64, 2, 16\] but config.json implies \[4, 128, 2, 16\]/.test(e.message));
  });
});

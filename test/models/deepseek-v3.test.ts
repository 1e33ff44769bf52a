// DeepSeek-V3 / V2 config.json → ArchitectureSpec, checked field by field against transformers' configuration and
// modeling code (defaults, aliases, YaRN softmax scale, layer plan, router), the configs moets refuses, and
// inspect's parameter count on tiny checkpoints against the tensors written.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoetsError } from '../../src/core/errors.ts';
import { ModelConfig } from '../../src/io/config.ts';
import { inspectModel } from '../../src/models/inspect.ts';
import { architectureOf } from '../../src/models/registry.ts';
import type { MoeFfnSpec } from '../../src/models/spec.ts';
import { TINY_CONFIGS, writeTinyCheckpoint } from '../util/tiny-checkpoint.ts';

const specOf = (raw: Record<string, unknown>) => architectureOf(ModelConfig.fromObject('/x/config.json', raw));
const base = TINY_CONFIGS['deepseek_v3']!;

function refused(raw: Record<string, unknown>, kind: string, words: RegExp): void {
  assert.throws(() => specOf(raw), (e: unknown) => e instanceof MoetsError && e.kind === kind && words.test(e.message));
}

describe('deepseek_v3 config', () => {
  it('maps MLA dims, the router, shared experts and the dense first layers', () => {
    const s = specOf(base);
    assert.deepEqual(s.attention.mla, { qLoraRank: 16, kvLoraRank: 12, qkNopeHeadDim: 8, qkRopeHeadDim: 6, vHeadDim: 10 });
    assert.equal(s.attention.headDim, 14);
    assert.equal(s.attention.numKvHeads, 4);
    assert.equal(s.attention.rope.rotaryDim, 6, 'RoPE runs over qk_rope_head_dim');
    assert.equal(s.attention.rope.pairing, 'interleaved', 'rope_interleave defaults to true');
    assert.deepEqual(s.layers.map((l) => l.ffn.kind), ['dense', 'moe', 'moe']);
    assert.deepEqual(s.layers[0]!.ffn, { kind: 'dense', intermediateSize: 40 });
    const moe = s.layers[1]!.ffn as MoeFfnSpec;
    assert.deepEqual(moe.router, { scoring: 'sigmoid', topK: 3, normalize: true, scale: 2.5, groups: { count: 4, keep: 2 } });
    assert.equal(moe.selectionBias, true);
    assert.deepEqual(moe.sharedExpert, { intermediateSize: 2 * 12, gated: false });
    assert.equal(moe.numExperts, 8);
  });

  it('softmax scale: qk_head_dim^-0.5 × mscale(factor, mscale_all_dim)², YaRN attention factor mscale/mscale_all_dim', () => {
    const mscale = (factor: number, m: number) => 0.1 * m * Math.log(factor) + 1;
    const rope = { rope_type: 'yarn', rope_theta: 10000, factor: 40, original_max_position_embeddings: 4096, mscale: 1, mscale_all_dim: 0.8 };
    const s = specOf({ ...base, max_position_embeddings: 163840, rope_parameters: rope });
    assert.ok(Math.abs(s.attention.scale! - 14 ** -0.5 * mscale(40, 0.8) ** 2) < 1e-12);
    assert.ok(Math.abs(s.attention.rope.attentionScaling - mscale(40, 1) / mscale(40, 0.8)) < 1e-12);
    // Released configs: top-level rope_theta and rope_scaling with "type".
    const { rope_type: _t, rope_theta: _r, ...rest } = rope;
    const legacy = specOf({ ...base, rope_parameters: undefined, rope_theta: 10000, rope_scaling: { type: 'yarn', ...rest } });
    assert.equal(legacy.attention.scale, s.attention.scale);
    // Default RoPE: no mscale; rotate_half when rope_interleave is false.
    const plain = specOf({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 10000, mscale_all_dim: 1 }, rope_interleave: false });
    assert.equal(plain.attention.scale, 14 ** -0.5);
    assert.equal(plain.attention.rope.pairing, 'half');
  });

  it('q_lora_rank null means one q_proj; absent means the default 1536; aliases for the expert count', () => {
    assert.equal(specOf({ ...base, q_lora_rank: null }).attention.mla!.qLoraRank, undefined);
    const { q_lora_rank: _q, n_routed_experts: _e, ...rest } = base;
    const s = specOf({ ...rest, num_local_experts: 8 });
    assert.equal(s.attention.mla!.qLoraRank, 1536);
    assert.equal((s.layers[2]!.ffn as MoeFfnSpec).numExperts, 8);
  });

  it('moe_layer_freq keeps every freq-th layer past first_k_dense_replace sparse; n_group 1 means no groups', () => {
    const s = specOf({ ...base, num_hidden_layers: 6, first_k_dense_replace: 1, moe_layer_freq: 2, n_group: 1, topk_group: 1 });
    assert.deepEqual(s.layers.map((l) => l.ffn.kind), ['dense', 'dense', 'moe', 'dense', 'moe', 'dense']);
    assert.equal((s.layers[2]!.ffn as MoeFfnSpec).router.groups, undefined);
  });

  it('refuses configs it cannot run, with one clear line', () => {
    refused({ ...base, num_key_value_heads: 2 }, 'unsupported', /num_key_value_heads/);
    refused({ ...base, n_group: 3 }, 'format', /n_group/);
    refused({ ...base, topk_group: 5 }, 'format', /topk_group/);
    refused({ ...base, topk_group: 1, num_experts_per_tok: 3 }, 'format', /num_experts_per_tok/);
    refused({ ...base, mlp_bias: true }, 'unsupported', /mlp_bias/);
  });

  it('inspect: total parameters = the tensors in a tiny checkpoint (MLA, shared experts, correction bias)', () => {
    for (const config of [base, { ...base, q_lora_rank: null, attention_bias: false }, TINY_CONFIGS['deepseek_v2']!]) {
      const r = inspectModel(writeTinyCheckpoint(config, 'hub', 5));
      assert.equal(r.parameters.total, r.parameters.stored);
      const moe = r.experts!;
      const idle = r.sparseLayers * (moe.count - moe.topK) * 3 * r.hiddenSize * moe.intermediateSize;
      assert.equal(r.parameters.activePerToken, r.parameters.total - idle);
    }
  });
});

describe('deepseek_v2 config', () => {
  it('greedy softmax routing, never renormalised, times routed_scaling_factor; always interleaved RoPE', () => {
    const s = specOf({ ...TINY_CONFIGS['deepseek_v2']!, norm_topk_prob: true, routed_scaling_factor: 16, rope_interleave: false });
    const moe = s.layers.find((l) => l.ffn.kind === 'moe')!.ffn as MoeFfnSpec;
    assert.deepEqual(moe.router, { scoring: 'softmax-topk', topK: 2, normalize: false, scale: 16 });
    assert.equal(moe.selectionBias, undefined);
    assert.equal(s.attention.rope.pairing, 'interleaved');
  });

  it('refuses group_limited_greedy (groups scored by their max)', () => {
    refused({ ...TINY_CONFIGS['deepseek_v2']!, topk_method: 'group_limited_greedy', n_group: 2, topk_group: 1 }, 'unsupported', /group_limited_greedy/);
  });
});

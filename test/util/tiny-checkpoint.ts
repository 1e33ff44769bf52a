// Writes small random checkpoints of any supported family to a temp directory, in either weight layout, so that
// tests can exercise the real loading path (config.json + safetensors) without fixtures from elsewhere.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelConfig } from '../../src/io/config.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { architectureOf } from '../../src/models/registry.ts';
import type { ArchitectureSpec } from '../../src/models/spec.ts';
import { Rng } from './random.ts';
import { gptOssMoeTensors } from './tiny-gpt-oss.ts';

/** 'mxfp4': GPT-OSS only, its expert weights as MXFP4 blocks and scales (its 'hub' and 'fused' are the same). */
export type Layout = 'hub' | 'fused' | 'mxfp4';

export function writeTinyCheckpoint(config: Record<string, unknown>, layout: Layout, seed = 1, dir?: string): string {
  const out = dir ?? mkdtempSync(join(tmpdir(), 'moets-tiny-'));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), JSON.stringify(config, null, 2));
  const spec = architectureOf(ModelConfig.fromObject(join(out, 'config.json'), config));
  writeSafetensors(join(out, 'model.safetensors'), tinyTensors(spec, layout, new Rng(seed)));
  return out;
}

function tinyTensors(s: ArchitectureSpec, layout: Layout, rng: Rng): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  const add = (name: string, shape: number[], std = 0.08, mean = 0) => {
    const values = rng.normals(shape.reduce((a, b) => a * b, 1), std, mean);
    out.push({ name, dtype: 'F32', shape, data: new Uint8Array(values.buffer) });
  };
  const D = s.hiddenSize;
  const a = s.attention;
  const [q, kv] = [a.numHeads * a.headDim, a.numKvHeads * a.headDim];
  const moeName = s.modelType === 'mixtral' && layout === 'hub' ? 'block_sparse_moe' : 'mlp';
  add('model.embed_tokens.weight', [s.vocabSize, D], 0.5);
  s.layers.forEach((layer, i) => {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [D], 0.1, 1);
    add(`${p}.post_attention_layernorm.weight`, [D], 0.1, 1);
    if (a.mla) mlaTensors(add, `${p}.self_attn`, s);
    for (const [n, rows, cols] of a.mla ? [] : [['q', q, D], ['k', kv, D], ['v', kv, D], ['o', D, q]] as const) {
      add(`${p}.self_attn.${n}_proj.weight`, [rows, cols]);
      if ((n !== 'o' && a.qkvBias) || (n === 'o' && a.outputBias)) add(`${p}.self_attn.${n}_proj.bias`, [rows]);
    }
    if (a.sinks) add(`${p}.self_attn.sinks`, [a.numHeads], 0.5);
    if (a.qkNorm !== 'none') {
      add(`${p}.self_attn.q_norm.weight`, [a.qkNorm === 'per-head' ? a.headDim : q], 0.1, 1);
      add(`${p}.self_attn.k_norm.weight`, [a.qkNorm === 'per-head' ? a.headDim : kv], 0.1, 1);
    }
    const f = layer.ffn;
    if (f.kind === 'dense') {
      swiGlu(add, `${p}.mlp`, f.intermediateSize, D);
      return;
    }
    const [E, F] = [f.numExperts, f.expertIntermediateSize];
    if (s.weights.expertFormat === 'gpt-oss') {
      out.push(...gptOssMoeTensors(rng, p, D, E, F, layout === 'mxfp4'));
      return;
    }
    add(`${p}.${moeName}.gate.weight`, [E, D], 0.3);
    if (f.selectionBias) add(`${p}.mlp.gate.e_score_correction_bias`, [E], 0.05);
    if (layout === 'fused') {
      add(`${p}.mlp.experts.gate_up_proj`, [E, 2 * F, D]);
      add(`${p}.mlp.experts.down_proj`, [E, D, F]);
    } else {
      const names = s.weights.expertProjections;
      for (let e = 0; e < E; e++) {
        add(`${p}.${moeName}.experts.${e}.${names.gate}.weight`, [F, D]);
        add(`${p}.${moeName}.experts.${e}.${names.up}.weight`, [F, D]);
        add(`${p}.${moeName}.experts.${e}.${names.down}.weight`, [D, F]);
      }
    }
    if (f.sharedExpert) {
      const sharedName = s.modelType.startsWith('deepseek') ? 'shared_experts' : 'shared_expert';
      swiGlu(add, `${p}.mlp.${sharedName}`, f.sharedExpert.intermediateSize, D);
      if (f.sharedExpert.gated) add(`${p}.mlp.shared_expert_gate.weight`, [1, D]);
    }
  });
  add('model.norm.weight', [D], 0.1, 1);
  if (!s.tieWordEmbeddings) add('lm_head.weight', [s.vocabSize, D]);
  return out;
}

/** DeepSeek's multi-head latent attention weights under `p` (…self_attn), with transformers' names. */
function mlaTensors(add: (name: string, shape: number[], std?: number, mean?: number) => void, p: string, s: ArchitectureSpec): void {
  const [D, a] = [s.hiddenSize, s.attention];
  const m = a.mla!;
  const qOut = a.numHeads * (m.qkNopeHeadDim + m.qkRopeHeadDim);
  if (m.qLoraRank === undefined) add(`${p}.q_proj.weight`, [qOut, D]);
  else {
    add(`${p}.q_a_proj.weight`, [m.qLoraRank, D]);
    if (a.qkvBias) add(`${p}.q_a_proj.bias`, [m.qLoraRank]);
    add(`${p}.q_a_layernorm.weight`, [m.qLoraRank], 0.1, 1);
    add(`${p}.q_b_proj.weight`, [qOut, m.qLoraRank]);
  }
  add(`${p}.kv_a_proj_with_mqa.weight`, [m.kvLoraRank + m.qkRopeHeadDim, D]);
  if (a.qkvBias) add(`${p}.kv_a_proj_with_mqa.bias`, [m.kvLoraRank + m.qkRopeHeadDim]);
  add(`${p}.kv_a_layernorm.weight`, [m.kvLoraRank], 0.1, 1);
  add(`${p}.kv_b_proj.weight`, [a.numHeads * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank]);
  add(`${p}.o_proj.weight`, [D, a.numHeads * m.vHeadDim]);
  if (a.outputBias) add(`${p}.o_proj.bias`, [D]);
}

function swiGlu(add: (name: string, shape: number[]) => void, p: string, F: number, D: number): void {
  add(`${p}.gate_proj.weight`, [F, D]);
  add(`${p}.up_proj.weight`, [F, D]);
  add(`${p}.down_proj.weight`, [D, F]);
}

/** Small configs of every family with the traits that matter (GQA, sliding window, shared expert, q/k norm …). */
export const TINY_CONFIGS: Record<string, Record<string, unknown>> = {
  mixtral: {
    model_type: 'mixtral', vocab_size: 97, hidden_size: 32, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 6, num_experts_per_tok: 2,
    sliding_window: 5, rope_theta: 1000, rms_norm_eps: 1e-5, max_position_embeddings: 128, eos_token_id: 2,
  },
  qwen2_moe: {
    model_type: 'qwen2_moe', vocab_size: 97, hidden_size: 32, intermediate_size: 40, moe_intermediate_size: 20,
    shared_expert_intermediate_size: 28, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2,
    num_experts: 6, num_experts_per_tok: 3, mlp_only_layers: [1], norm_topk_prob: false, qkv_bias: true,
    max_position_embeddings: 128, eos_token_id: 2,
  },
  qwen3_moe: {
    model_type: 'qwen3_moe', vocab_size: 97, hidden_size: 32, intermediate_size: 40, moe_intermediate_size: 20,
    head_dim: 12, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, num_experts: 6,
    num_experts_per_tok: 2, norm_topk_prob: true, max_position_embeddings: 128, eos_token_id: 2, tie_word_embeddings: true,
  },
  deepseek_v3: {
    model_type: 'deepseek_v3', vocab_size: 97, hidden_size: 32, intermediate_size: 40, moe_intermediate_size: 12,
    num_hidden_layers: 3, first_k_dense_replace: 1, num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: 16,
    kv_lora_rank: 12, qk_nope_head_dim: 8, qk_rope_head_dim: 6, v_head_dim: 10, n_routed_experts: 8,
    num_experts_per_tok: 3, n_group: 4, topk_group: 2, n_shared_experts: 2, routed_scaling_factor: 2.5,
    norm_topk_prob: true, attention_bias: true, max_position_embeddings: 128, eos_token_id: 2,
    rope_parameters: {
      rope_type: 'yarn', rope_theta: 10000, factor: 4, original_max_position_embeddings: 32, mscale: 1, mscale_all_dim: 1,
      beta_fast: 32, beta_slow: 1,
    },
  },
  deepseek_v2: {
    model_type: 'deepseek_v2', vocab_size: 97, hidden_size: 24, intermediate_size: 32, moe_intermediate_size: 10,
    num_hidden_layers: 3, first_k_dense_replace: 1, num_attention_heads: 2, num_key_value_heads: 2, q_lora_rank: null,
    kv_lora_rank: 10, qk_nope_head_dim: 6, qk_rope_head_dim: 4, v_head_dim: 8, n_routed_experts: 6,
    num_experts_per_tok: 2, n_shared_experts: 1, routed_scaling_factor: 1.5, topk_method: 'greedy',
    max_position_embeddings: 128, eos_token_id: 2, rope_theta: 5000,
  },
  olmoe: {
    model_type: 'olmoe', vocab_size: 97, hidden_size: 32, intermediate_size: 20, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 4, num_experts: 6, num_experts_per_tok: 2, clip_qkv: 0.4,
    max_position_embeddings: 128, eos_token_id: 2,
  },
  gpt_oss: {
    model_type: 'gpt_oss', vocab_size: 97, hidden_size: 64, intermediate_size: 32, head_dim: 16, num_hidden_layers: 3,
    num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, num_experts_per_tok: 2, sliding_window: 4,
    max_position_embeddings: 128, eos_token_id: 2,
  },
};

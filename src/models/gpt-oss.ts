// GPT-OSS (model_type "gpt_oss"): attention with q/k/v/o biases and a learned per-head sink logit in each softmax
// denominator (`self_attn.sinks`); layers alternate sliding-window and full attention (`layer_types`, default:
// even layers sliding); YaRN RoPE with rotate-half pairing (`_apply_rotary_emb` splits each head into halves);
// every layer sparse: the router is a linear layer with bias (`mlp.router`), top-k of its logits then softmax
// over those k; experts with biases and the clamped SwiGLU (alpha 1.702, limit swiglu_limit) in GPT-OSS's own
// expert layout, plain or MXFP4 (converted at load, see gpt-oss-experts.ts).
// Follows transformers' models/gpt_oss/modeling_gpt_oss.py and configuration_gpt_oss.py.
import { fail } from '../core/errors.ts';
import { type JsonObject, ModelConfig } from '../io/config.ts';
import { attentionSpec, commonFields, HUB_EXPERT_NAMES, type ModelFamily, slidingWindows } from './common.ts';

/** GptOssConfig's class defaults that change behaviour when a config.json leaves the field out. */
const DEFAULTS = {
  head_dim: 64,
  sliding_window: 128,
  num_experts_per_tok: 4,
  max_position_embeddings: 131072,
  attention_bias: true,
  swiglu_limit: 7.0,
};

/** GptOssConfig.__post_init__'s RoPE when config.json names none. */
const DEFAULT_ROPE = {
  rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096,
};

/** The config with GptOssConfig's defaults filled in where config.json has no such key (an explicit null stays). */
function withDefaults(c: ModelConfig): ModelConfig {
  const raw: JsonObject = { ...DEFAULTS, ...c.raw };
  if (!c.has('rope_parameters') && !c.has('rope_scaling')) raw['rope_parameters'] = DEFAULT_ROPE;
  return ModelConfig.fromObject(c.path, raw);
}

export const gptOss: ModelFamily = {
  modelType: 'gpt_oss',
  toSpec(config) {
    const c = withDefaults(config);
    const f = commonFields(c, { rmsNormEps: 1e-5 });
    const numExperts = c.int(c.alias('num_local_experts', 'num_experts'), 128);
    const topK = c.int('num_experts_per_tok');
    if (topK > numExperts) fail('format', `${c.path}: num_experts_per_tok (${topK}) is larger than the number of experts (${numExperts})`);
    const bias = c.bool('attention_bias', true);
    const windows = slidingWindows(c, f.numLayers, c.optionalPositive('sliding_window'), (i) => i % 2 === 0);
    const ffn = {
      kind: 'moe' as const,
      numExperts,
      expertIntermediateSize: c.int('intermediate_size', 2880),
      router: { scoring: 'topk-softmax' as const, topK, normalize: false },
      routerBias: true,
      expertBias: true,
      // swiglu_limit as OpenAI's reference reads it; transformers 5.17 fixes 7.0, the released configs' value.
      activation: { alpha: 1.702, limit: c.positive('swiglu_limit') },
    };
    return {
      ...f,
      modelType: 'gpt_oss',
      attention: attentionSpec(c, f, 150000, { qkvBias: bias, outputBias: bias, qkNorm: 'none', sinks: true }),
      layers: windows.map((window) => ({ ffn, ...(window !== undefined ? { slidingWindow: window } : {}) })),
      weights: { renames: [[/\.mlp\.router\./, '.mlp.gate.']], expertProjections: HUB_EXPERT_NAMES, expertFormat: 'gpt-oss' },
    };
  },
};

// Qwen3-MoE (model_type "qwen3_moe"): attention with an explicit head_dim and RMSNorm over each head's queries and
// keys (q_norm / k_norm of size head_dim), biases only when attention_bias; sparse layers as in Qwen2-MoE
// (mlp_only_layers, decoder_sparse_step), no shared expert; softmax → top-k, renormalised when norm_topk_prob.
// With use_sliding_window every layer attends within sliding_window. Follows transformers'
// models/qwen3_moe/modeling_qwen3_moe.py.
import {
  attentionSpec, commonFields, HUB_EXPERT_NAMES, type ModelFamily, qwenLayerFfns, softmaxRouter,
} from './common.ts';

export const qwen3Moe: ModelFamily = {
  modelType: 'qwen3_moe',
  toSpec(c) {
    const f = commonFields(c, { rmsNormEps: 1e-6 });
    const numExperts = c.int(c.alias('num_experts', 'num_local_experts'), 128, 0);
    const bias = c.bool('attention_bias', false);
    const window = c.bool('use_sliding_window', false) ? c.optionalPositive('sliding_window') : undefined;
    const ffns = qwenLayerFfns(c, f.numLayers, {
      numExperts,
      expertIntermediateSize: c.int('moe_intermediate_size', 768),
      router: softmaxRouter(c, Math.max(numExperts, 1), c.bool('norm_topk_prob', false)),
    });
    return {
      ...f,
      modelType: 'qwen3_moe',
      attention: attentionSpec(c, f, 10000, { qkvBias: bias, outputBias: bias, qkNorm: 'per-head' }),
      layers: ffns.map((ffn) => ({ ffn, ...(window !== undefined ? { slidingWindow: window } : {}) })),
      weights: { renames: [], expertProjections: HUB_EXPERT_NAMES },
    };
  },
};

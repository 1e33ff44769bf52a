// OLMoE (model_type "olmoe"): attention whose q_norm / k_norm are RMSNorms over the WHOLE q and k projections
// (before splitting into heads), then optional clamping of q, k, v to ±clip_qkv; biases when attention_bias;
// every layer sparse, softmax → top-k, renormalised when norm_topk_prob; no sliding window.
// Follows transformers' models/olmoe/modeling_olmoe.py.
import { attentionSpec, commonFields, HUB_EXPERT_NAMES, type ModelFamily, softmaxRouter } from './common.ts';

export const olmoe: ModelFamily = {
  modelType: 'olmoe',
  toSpec(c) {
    const f = commonFields(c, { rmsNormEps: 1e-5 });
    const numExperts = c.int(c.alias('num_experts', 'num_local_experts'), 64);
    const bias = c.bool('attention_bias', false);
    const clip = c.optionalPositive('clip_qkv');
    const router = softmaxRouter(c, numExperts, c.bool('norm_topk_prob', false));
    return {
      ...f,
      modelType: 'olmoe',
      attention: attentionSpec(c, f, 10000, {
        qkvBias: bias, outputBias: bias, qkNorm: 'whole', ...(clip !== undefined ? { clipQkv: clip } : {}),
      }),
      layers: Array.from({ length: f.numLayers }, () => ({
        ffn: { kind: 'moe' as const, numExperts, expertIntermediateSize: c.int('intermediate_size'), router },
      })),
      weights: { renames: [], expertProjections: HUB_EXPERT_NAMES },
    };
  },
};

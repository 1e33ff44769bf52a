// Qwen2-MoE (model_type "qwen2_moe"): attention with q/k/v biases; sparse layers chosen by
// mlp_only_layers / decoder_sparse_step (dense ones use intermediate_size); softmax → top-k routing, renormalised
// only when norm_topk_prob; a shared expert scaled by sigmoid(shared_expert_gate · x) added to every sparse layer.
// Sliding window on layers marked by layer_types (or, without it, as transformers' config derives it).
// Follows transformers' models/qwen2_moe/modeling_qwen2_moe.py and configuration_qwen2_moe.py.
import {
  attentionSpec, commonFields, HUB_EXPERT_NAMES, type ModelFamily, qwenLayerFfns, slidingWindows, softmaxRouter,
} from './common.ts';

export const qwen2Moe: ModelFamily = {
  modelType: 'qwen2_moe',
  toSpec(c) {
    const f = commonFields(c, { rmsNormEps: 1e-6 });
    const numExperts = c.int(c.alias('num_experts', 'num_local_experts'), 60, 0);
    const sharedSize = c.int('shared_expert_intermediate_size', 5632, 0);
    const useSliding = c.bool('use_sliding_window', false);
    const maxWindowLayers = c.int('max_window_layers', 28, 0);
    const window = useSliding ? c.optionalPositive('sliding_window') : undefined;
    const windows = slidingWindows(c, f.numLayers, window, (i) => useSliding && (i + 1) % 2 === 1 && i < maxWindowLayers);
    const ffns = qwenLayerFfns(c, f.numLayers, {
      numExperts,
      expertIntermediateSize: c.int('moe_intermediate_size', 1408),
      router: softmaxRouter(c, Math.max(numExperts, 1), c.bool('norm_topk_prob', false)),
      ...(sharedSize > 0 ? { sharedExpert: { intermediateSize: sharedSize, gated: true } } : {}),
    });
    return {
      ...f,
      modelType: 'qwen2_moe',
      attention: attentionSpec(c, f, 10000, { qkvBias: c.bool('qkv_bias', true), outputBias: false, qkNorm: 'none' }),
      layers: ffns.map((ffn, i) => ({ ffn, ...(windows[i] !== undefined ? { slidingWindow: windows[i] } : {}) })),
      weights: { renames: [], expertProjections: HUB_EXPERT_NAMES },
    };
  },
};

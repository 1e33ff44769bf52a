// Mixtral (model_type "mixtral"): Llama attention with GQA and optional sliding window; every layer a sparse
// MoE of SwiGLU experts routed by softmax → top-k → renormalise. Follows transformers'
// models/mixtral/modeling_mixtral.py. Hub checkpoints name the block `block_sparse_moe` with experts w1 (gate),
// w3 (up), w2 (down); transformers 5 saves `mlp.gate` and fused `mlp.experts.gate_up_proj` / `down_proj`.
import { attentionSpec, commonFields, type ModelFamily, softmaxRouter } from './common.ts';

export const mixtral: ModelFamily = {
  modelType: 'mixtral',
  toSpec(c) {
    const f = commonFields(c, { rmsNormEps: 1e-5 });
    const numExperts = c.int(c.alias('num_local_experts', 'num_experts'), 8);
    const router = softmaxRouter(c, numExperts, true);
    const window = c.optionalPositive('sliding_window');
    return {
      ...f,
      modelType: 'mixtral',
      attention: attentionSpec(c, f, 1e6, { qkvBias: false, outputBias: false, qkNorm: 'none' }),
      layers: Array.from({ length: f.numLayers }, () => ({
        ...(window !== undefined ? { slidingWindow: window } : {}),
        ffn: { kind: 'moe' as const, numExperts, expertIntermediateSize: c.int('intermediate_size'), router },
      })),
      weights: { renames: [[/\.block_sparse_moe\./, '.mlp.']], expertProjections: { gate: 'w1', up: 'w3', down: 'w2' } },
    };
  },
};

// Granite-MoE (model_type "granitemoe"): Llama attention whose softmax scale is attention_multiplier (not
// 1/sqrt(head_dim)); embeddings × embedding_multiplier, each residual branch × residual_multiplier, logits ÷
// logits_scaling; every layer sparse: top-k of the router logits, then softmax over those k (no bias); usually
// tied embeddings. Follows transformers' models/granitemoe/modeling_granitemoe.py.
// Weights: Hub checkpoints keep the experts fused as `block_sparse_moe.input_linear.weight` [E, 2F, D] (gate rows
// first) and `output_linear.weight` [E, D, F] with the router at `block_sparse_moe.router.layer.weight`;
// transformers 5 saves `block_sparse_moe.experts.gate_up_proj` / `down_proj` and `block_sparse_moe.router.weight`.
// Both are renamed onto the canonical `mlp.experts.*` and `mlp.gate.weight`.
import { fail } from '../core/errors.ts';
import { attentionSpec, commonFields, HUB_EXPERT_NAMES, type ModelFamily } from './common.ts';

export const granitemoe: ModelFamily = {
  modelType: 'granitemoe',
  toSpec(c) {
    const f = commonFields(c, { rmsNormEps: 1e-6 });
    const numExperts = c.int(c.alias('num_local_experts', 'num_experts'), 8);
    const topK = c.int('num_experts_per_tok', 2);
    if (topK > numExperts) fail('format', `${c.path}: num_experts_per_tok (${topK}) is larger than the number of experts (${numExperts})`);
    const bias = c.bool('attention_bias', false);
    const ffn = {
      kind: 'moe' as const,
      numExperts,
      expertIntermediateSize: c.int('intermediate_size'),
      router: { scoring: 'topk-softmax' as const, topK, normalize: false },
    };
    return {
      ...f,
      modelType: 'granitemoe',
      attention: attentionSpec(c, f, 10000, { qkvBias: bias, outputBias: bias, qkNorm: 'none', scale: c.positive('attention_multiplier', 1) }),
      layers: Array.from({ length: f.numLayers }, () => ({ ffn })),
      multipliers: {
        embedding: c.positive('embedding_multiplier', 1),
        residual: c.positive('residual_multiplier', 1),
        logitsDivisor: c.positive('logits_scaling', 1),
      },
      weights: {
        renames: [
          [/\.block_sparse_moe\.input_linear\.weight$/, '.mlp.experts.gate_up_proj'],
          [/\.block_sparse_moe\.output_linear\.weight$/, '.mlp.experts.down_proj'],
          [/\.block_sparse_moe\.router\.(layer\.)?weight$/, '.mlp.gate.weight'],
          [/\.block_sparse_moe\.experts\./, '.mlp.experts.'],
        ],
        expertProjections: HUB_EXPERT_NAMES,
      },
    };
  },
};

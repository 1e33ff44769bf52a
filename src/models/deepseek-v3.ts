// DeepSeek-V3 (model_type "deepseek_v3") and DeepSeek-V2 (model_type "deepseek_v2"): multi-head latent attention
// (src/nn/mla-attention.ts) with decoupled RoPE dims (interleaved pairs, YaRN), the first `first_k_dense_replace`
// layers dense, then MoE layers with `n_shared_experts` always-on, ungated experts of moe_intermediate_size each.
// V3 routes by sigmoid scores + e_score_correction_bias (selection only), group-limited (n_group groups scored by the
// sum of their top-2, topk_group kept), weights renormalised when norm_topk_prob, × routed_scaling_factor.
// V2 routes by softmax → top-k ("greedy", never renormalised) × routed_scaling_factor; its "group_limited_greedy"
// scores groups by their max and is refused. Follows transformers' models/deepseek_v3/modeling_deepseek_v3.py,
// configuration_deepseek_v3.py and models/deepseek_v2/modeling_deepseek_v2.py.
import type { RouterSpec } from '../backend/backend.ts';
import { fail } from '../core/errors.ts';
import { ModelConfig } from '../io/config.ts';
import { ropeFromConfig, type RopeSpec } from '../nn/rope.ts';
import { commonFields, HUB_EXPERT_NAMES, type ModelFamily } from './common.ts';
import type { ArchitectureSpec, FfnSpec, MlaSpec, MoeFfnSpec } from './spec.ts';

/** What differs between the two model types; everything else is read the same way. */
interface Flavour {
  modelType: 'deepseek_v3' | 'deepseek_v2';
  defaults: { numExperts: number; sharedExperts: number; scale: number; firstDense: number; moeSize: number };
  router(c: ModelConfig, numExperts: number, topK: number, scale: number): Pick<MoeFfnSpec, 'router' | 'selectionBias' | 'routerInF32'>;
  /** V3: rope_interleave (default true); V2 always rotates interleaved pairs (complex multiplication). */
  pairing(c: ModelConfig): RopeSpec['pairing'];
}

const V3: Flavour = {
  modelType: 'deepseek_v3',
  defaults: { numExperts: 256, sharedExperts: 1, scale: 2.5, firstDense: 3, moeSize: 2048 },
  router(c, numExperts, topK, scale) {
    const groups = c.int('n_group', 8);
    const keep = c.int('topk_group', 4);
    if (numExperts % groups !== 0 || numExperts / groups < 2) {
      fail('format', `${c.path}: ${numExperts} experts cannot form n_group=${groups} groups of at least 2; fix n_group`);
    }
    if (keep > groups) fail('format', `${c.path}: topk_group (${keep}) is larger than n_group (${groups})`);
    if (topK > keep * (numExperts / groups)) fail('format', `${c.path}: num_experts_per_tok (${topK}) exceeds the experts in topk_group (${keep}) groups`);
    const router: RouterSpec = {
      scoring: 'sigmoid', topK, normalize: c.bool('norm_topk_prob', true), scale,
      ...(groups > 1 ? { groups: { count: groups, keep } } : {}),
    };
    return { router, selectionBias: true, routerInF32: true };
  },
  pairing: (c) => (c.bool('rope_interleave', true) ? 'interleaved' : 'half'),
};

const V2: Flavour = {
  modelType: 'deepseek_v2',
  defaults: { numExperts: 64, sharedExperts: 2, scale: 1, firstDense: 0, moeSize: 1407 },
  router(c, _numExperts, topK, scale) {
    const method = c.string('topk_method', 'greedy');
    if (method !== 'greedy') {
      fail('unsupported', `${c.path}: DeepSeek-V2 topk_method "${method}" is not supported (group max-scoring); moets runs "greedy" V2 routing and DeepSeek-V3's group-limited routing`);
    }
    return { router: { scoring: 'softmax-topk', topK, normalize: false, scale }, routerInF32: true };
  },
  pairing: () => 'interleaved',
};

export const deepseekV3: ModelFamily = { modelType: 'deepseek_v3', toSpec: (c) => deepseekSpec(c, V3) };
export const deepseekV2: ModelFamily = { modelType: 'deepseek_v2', toSpec: (c) => deepseekSpec(c, V2) };

function deepseekSpec(config: ModelConfig, flavour: Flavour): ArchitectureSpec {
  const mla = mlaSpec(config);
  // As transformers' config __post_init__ does: head_dim is the RoPE head dim (what the rotary embedding uses).
  const c = ModelConfig.fromObject(config.path, { ...config.raw, head_dim: mla.qkRopeHeadDim });
  const f = commonFields(c, { rmsNormEps: 1e-6 });
  if (f.numKvHeads !== f.numHeads) {
    fail('unsupported', `${c.path}: num_key_value_heads (${f.numKvHeads}) differs from num_attention_heads (${f.numHeads}); latent attention expands keys to every head`);
  }
  if (c.bool('mlp_bias', false)) fail('unsupported', `${c.path}: mlp_bias is not supported; moets runs bias-free DeepSeek MLPs`);
  const bias = c.bool('attention_bias', false);
  const qkHeadDim = mla.qkNopeHeadDim + mla.qkRopeHeadDim;
  const rope = ropeFromConfig(c, mla.qkRopeHeadDim, 10000, flavour.pairing(c));
  return {
    ...f,
    modelType: flavour.modelType,
    attention: {
      numHeads: f.numHeads, numKvHeads: f.numHeads, headDim: qkHeadDim,
      // In MLA, qkvBias is the bias of q_a_proj and kv_a_proj_with_mqa (attention_bias), outputBias that of o_proj.
      qkvBias: bias, outputBias: bias, qkNorm: 'none',
      scale: softmaxScale(c, qkHeadDim), mla, rope,
    },
    layers: layerFfns(c, f.numLayers, flavour).map((ffn) => ({ ffn })),
    weights: { renames: [[/\.mlp\.shared_experts\./, '.mlp.shared_expert.']], expertProjections: HUB_EXPERT_NAMES },
  };
}

function mlaSpec(c: ModelConfig): MlaSpec {
  return {
    // Absent means transformers' default (1536); an explicit null means one q_proj without LoRA.
    ...(c.raw['q_lora_rank'] !== null ? { qLoraRank: c.int('q_lora_rank', 1536) } : {}),
    kvLoraRank: c.int('kv_lora_rank', 512),
    qkNopeHeadDim: c.int('qk_nope_head_dim', 128),
    qkRopeHeadDim: c.int('qk_rope_head_dim', 64),
    vHeadDim: c.int('v_head_dim', 128),
  };
}

/**
 * qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)² when the RoPE is scaled and names mscale_all_dim
 * (transformers' yarn_apply_mscale, applied for any rope type but "default").
 */
function softmaxScale(c: ModelConfig, qkHeadDim: number): number {
  const params: Record<string, unknown> = { ...(c.object('rope_scaling') ?? {}), ...(c.object('rope_parameters') ?? {}) };
  const type = String(params['rope_type'] ?? params['type'] ?? 'default');
  const mscaleAllDim = params['mscale_all_dim'];
  let scale = qkHeadDim ** -0.5;
  if (type !== 'default' && mscaleAllDim) {
    const factor = params['factor'];
    if (typeof factor !== 'number' || typeof mscaleAllDim !== 'number') {
      fail('format', `${c.path}: rope parameters "factor" and "mscale_all_dim" must be numbers`);
    }
    const mscale = factor <= 1 ? 1 : 0.1 * mscaleAllDim * Math.log(factor) + 1;
    scale *= mscale * mscale;
  }
  return scale;
}

/**
 * Layers below first_k_dense_replace are dense (intermediate_size); the rest are MoE, except that a config with
 * moe_layer_freq > 1 (DeepSeek's original code) keeps only layers i with i % moe_layer_freq == 0 sparse.
 */
function layerFfns(c: ModelConfig, numLayers: number, flavour: Flavour): FfnSpec[] {
  const d = flavour.defaults;
  const numExperts = c.int(c.alias('n_routed_experts', 'num_local_experts', 'num_experts'), d.numExperts);
  const topK = c.int('num_experts_per_tok', flavour.modelType === 'deepseek_v3' ? 8 : undefined);
  if (topK > numExperts) fail('format', `${c.path}: num_experts_per_tok (${topK}) is larger than the number of experts (${numExperts})`);
  const moeSize = c.int('moe_intermediate_size', d.moeSize);
  const shared = c.int('n_shared_experts', d.sharedExperts, 0);
  const firstDense = c.int('first_k_dense_replace', d.firstDense, 0);
  const freq = c.int('moe_layer_freq', 1);
  const moe: MoeFfnSpec = {
    kind: 'moe',
    numExperts,
    expertIntermediateSize: moeSize,
    ...flavour.router(c, numExperts, topK, c.positive('routed_scaling_factor', d.scale)),
    ...(shared > 0 ? { sharedExpert: { intermediateSize: moeSize * shared, gated: false } } : {}),
  };
  return Array.from({ length: numLayers }, (_, i): FfnSpec =>
    i >= firstDense && i % freq === 0 ? moe : { kind: 'dense', intermediateSize: c.int('intermediate_size') });
}

// ArchitectureSpec: the family-neutral description of a decoder-only MoE transformer. Each model file maps a
// Hugging Face config.json onto this; shared code (the decoder, the loader, inspect) reads only this, never the
// model_type. Variants are declared traits (qkNorm, router, shared expert …), not names.
import type { ClampedGlu, RouterSpec } from '../backend/backend.ts';
import type { RopeSpec } from '../nn/rope.ts';

export interface AttentionSpec {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Bias on q/k/v projections (Qwen2); on the output projection. */
  qkvBias: boolean;
  outputBias: boolean;
  /**
   * RMSNorm on queries and keys after projection: 'per-head' over each head's Dh values (Qwen3),
   * 'whole' over the full projection before splitting into heads (OLMoE); 'none'.
   */
  qkNorm: 'none' | 'per-head' | 'whole';
  /** Clamp q, k and v to [-clip, clip] after projection (OLMoE clip_qkv). */
  clipQkv?: number;
  /** Softmax scale of q·k; default 1/sqrt(headDim) (Granite: attention_multiplier). */
  scale?: number;
  /** A learned per-head sink logit in each softmax denominator (GPT-OSS `self_attn.sinks`). */
  sinks?: boolean;
  /** Multi-head latent attention (DeepSeek-V2/V3); when present it replaces the q/k/v projections. */
  mla?: MlaSpec;
  rope: RopeSpec;
}

/** DeepSeek's multi-head latent attention: low-rank q and a compressed kv latent plus a decoupled RoPE key. */
export interface MlaSpec {
  /** Rank of q's low-rank projection (q_a_proj → q_a_layernorm → q_b_proj); undefined: one q_proj. */
  qLoraRank?: number;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
}

export interface DenseFfnSpec {
  kind: 'dense';
  intermediateSize: number;
}

export interface MoeFfnSpec {
  kind: 'moe';
  numExperts: number;
  expertIntermediateSize: number;
  router: RouterSpec;
  /** Bias on the router's linear layer (GPT-OSS `router.bias`). */
  routerBias?: boolean;
  /** Router logits from f32 copies of x and the router weight, whatever the compute dtype (DeepSeek). */
  routerInF32?: boolean;
  /** Selection-only bias per expert (DeepSeek `gate.e_score_correction_bias`, kept in f32), see RouterSpec. */
  selectionBias?: boolean;
  /** Biases on the experts' projections (GPT-OSS `gate_up_proj_bias`, `down_proj_bias`). */
  expertBias?: boolean;
  /** GPT-OSS's clamped SwiGLU instead of silu(gate) · up. */
  activation?: ClampedGlu;
  /** Always-on expert added to the routed output (Qwen2-MoE); `gated`: scaled by sigmoid(x · w_gate). */
  sharedExpert?: { intermediateSize: number; gated: boolean };
}

export type FfnSpec = DenseFfnSpec | MoeFfnSpec;

export interface LayerSpec {
  /** Sliding-window size for this layer's attention, undefined for full attention. */
  slidingWindow?: number;
  ffn: FfnSpec;
}

/** Where a family keeps its weights, beyond the Llama-style names every family here shares. */
export interface WeightLayout {
  /** Regex → replacement applied to every checkpoint name first (e.g. Mixtral's `.block_sparse_moe.` → `.mlp.`). */
  renames: [RegExp, string][];
  /** Names of one expert's projections in the Hub layout: `mlp.experts.{e}.{gate|up|down}.weight`. */
  expertProjections: { gate: string; up: string; down: string };
  /**
   * How fused experts are stored when not canonically: 'gpt-oss' — `gate_up_proj` [E, D, 2F] used as x · W with
   * gate/up interleaved along 2F (and in `gate_up_proj_bias`), `down_proj` [E, F, D], or both as MXFP4
   * `*_blocks` / `*_scales`; converted at load (see gpt-oss-experts.ts).
   */
  expertFormat?: 'gpt-oss';
}

/** Granite's scalings: embeddings × embedding, each residual branch × residual, logits ÷ logitsDivisor. */
export interface Multipliers {
  embedding: number;
  residual: number;
  logitsDivisor: number;
}

export interface ArchitectureSpec {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  rmsNormEps: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  bosTokenId?: number;
  eosTokenIds: number[];
  attention: AttentionSpec;
  layers: LayerSpec[];
  multipliers?: Multipliers;
  weights: WeightLayout;
}

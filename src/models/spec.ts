// ArchitectureSpec: the family-neutral description of a decoder-only MoE transformer. Each model file maps a
// Hugging Face config.json onto this; shared code (the decoder, the loader, inspect) reads only this, never the
// model_type. Variants are declared traits (qkNorm, router, shared expert …), not names.
import type { RouterSpec } from '../backend/backend.ts';
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
  rope: RopeSpec;
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
  weights: WeightLayout;
}

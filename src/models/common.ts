// Config fields that every Llama-style MoE family here reads the same way, and the per-family hooks.
import type { RouterSpec } from '../backend/backend.ts';
import { fail } from '../core/errors.ts';
import type { ModelConfig } from '../io/config.ts';
import { ropeFromConfig } from '../nn/rope.ts';
import type { ArchitectureSpec, AttentionSpec, FfnSpec } from './spec.ts';

/** A model family: one Hugging Face model_type mapped onto the shared ArchitectureSpec. */
export interface ModelFamily {
  modelType: string;
  toSpec(config: ModelConfig): ArchitectureSpec;
}

export interface CommonFields {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  bosTokenId?: number;
  eosTokenIds: number[];
}

export function commonFields(c: ModelConfig, defaults: { rmsNormEps: number }): CommonFields {
  const act = c.string('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish') fail('unsupported', `${c.path}: hidden_act "${act}" is not supported; moets runs SwiGLU (silu) experts`);
  const hiddenSize = c.int('hidden_size');
  const numHeads = c.int('num_attention_heads');
  const numKvHeads = c.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) fail('format', `${c.path}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  if (!c.has('head_dim') && hiddenSize % numHeads !== 0) fail('format', `${c.path}: hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and no head_dim is given`);
  const bos = c.idList('bos_token_id');
  return {
    vocabSize: c.int('vocab_size'),
    hiddenSize,
    numLayers: c.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim: c.int('head_dim', hiddenSize / numHeads),
    rmsNormEps: c.positive('rms_norm_eps', defaults.rmsNormEps),
    maxPositions: c.int('max_position_embeddings', 2048),
    tieWordEmbeddings: c.bool('tie_word_embeddings', false),
    ...(bos.length > 0 ? { bosTokenId: bos[0]! } : {}),
    eosTokenIds: c.idList('eos_token_id'),
  };
}

export function attentionSpec(
  c: ModelConfig, f: CommonFields, defaultTheta: number, traits: Omit<AttentionSpec, 'numHeads' | 'numKvHeads' | 'headDim' | 'rope'>,
): AttentionSpec {
  const rope = ropeFromConfig(c, f.headDim, defaultTheta, 'half');
  return { numHeads: f.numHeads, numKvHeads: f.numKvHeads, headDim: f.headDim, rope, ...traits };
}

export function softmaxRouter(c: ModelConfig, numExperts: number, normalize: boolean): RouterSpec {
  const topK = c.int('num_experts_per_tok');
  if (topK > numExperts) fail('format', `${c.path}: num_experts_per_tok (${topK}) is larger than the number of experts (${numExperts})`);
  return { scoring: 'softmax-topk', topK, normalize };
}

/**
 * Qwen-style layer plan: layer i is sparse unless listed in mlp_only_layers or (i+1) % decoder_sparse_step ≠ 0;
 * dense layers use intermediate_size.
 */
export function qwenLayerFfns(c: ModelConfig, numLayers: number, moe: Omit<Extract<FfnSpec, { kind: 'moe' }>, 'kind'>): FfnSpec[] {
  const denseOnly = new Set(c.intList('mlp_only_layers'));
  const step = c.int('decoder_sparse_step', 1);
  return Array.from({ length: numLayers }, (_, i): FfnSpec =>
    !denseOnly.has(i) && moe.numExperts > 0 && (i + 1) % step === 0
      ? { kind: 'moe', ...moe }
      : { kind: 'dense', intermediateSize: c.int('intermediate_size') });
}

/** layer_types from config.json when present: 'sliding_attention' layers get `window`. */
export function slidingWindows(c: ModelConfig, numLayers: number, window: number | undefined, fallback: (i: number) => boolean): (number | undefined)[] {
  const types = c.stringList('layer_types');
  if (types && types.length !== numLayers) fail('format', `${c.path}: layer_types has ${types.length} entries for ${numLayers} layers`);
  return Array.from({ length: numLayers }, (_, i) => {
    const sliding = types ? types[i] === 'sliding_attention' : fallback(i);
    return sliding && window ? window : undefined;
  });
}

export const HUB_EXPERT_NAMES = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };

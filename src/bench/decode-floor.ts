// The HBM floor of one decode step: the bytes a step must read at least, ÷ the copy bandwidth measured in the run.
// Weights: every layer's attention, norms and router, the experts the step's tokens actually chose (top-k per token
// at batch 1; the distinct experts hit by the batch, counted, at batch B), any dense or shared FFN, the final norm,
// the whole LM head, and the B embedding rows looked up. KV cache: each sequence's cached keys and values, per layer.
// Every weight is counted at the compute dtype's size (DeepSeek's f32 router is a rounding error here).
//
// Legend: B = batch (sequences), D = hidden, V = vocabulary, F = expert FFN size, S = cached positions read.
import type { ArchitectureSpec } from '../models/spec.ts';
import { countParameters } from '../models/inspect.ts';

export interface StepBytes {
  weightBytes: number;
  kvBytes: number;
}

/** Parameters of one routed expert of a MoE layer (gate, up, down and their biases). */
function expertParams(ffn: ArchitectureSpec['layers'][number]['ffn'], D: number): number {
  if (ffn.kind !== 'moe') return 0;
  const F = ffn.expertIntermediateSize;
  return 3 * D * F + (ffn.expertBias ? 2 * F + D : 0);
}

/** Cached values per position, per sequence and layer: keys and values of the KV heads, or MLA's latent + rope key. */
function kvValuesPerPosition(spec: ArchitectureSpec): number {
  const a = spec.attention;
  return a.mla ? a.mla.kvLoraRank + a.mla.qkRopeHeadDim : 2 * a.numKvHeads * a.headDim;
}

/**
 * Bytes read by one decode step of `batch` sequences.
 * distinctExperts[l]: experts layer l runs in the step (ignored for dense layers).
 * contextTokens: cached positions each sequence attends to (a layer's sliding window caps it).
 */
export function decodeStepBytes(
  spec: ArchitectureSpec, bytesPerValue: number, batch: number, distinctExperts: readonly number[], contextTokens: number,
): StepBytes {
  const D = spec.hiddenSize;
  const all = countParameters(spec, false);
  let params = all.total - all.embedding - all.experts; // attention, norms, routers, dense and shared FFNs
  spec.layers.forEach((layer, l) => {
    params += (distinctExperts[l] ?? 0) * expertParams(layer.ffn, D);
  });
  params += spec.vocabSize * D + (spec.tieWordEmbeddings ? 0 : batch * D); // LM head + embedding rows
  const perPosition = kvValuesPerPosition(spec);
  const kvValues = spec.layers.reduce((sum, layer) => sum + batch * Math.min(contextTokens, layer.slidingWindow ?? Infinity) * perPosition, 0);
  return { weightBytes: params * bytesPerValue, kvBytes: kvValues * bytesPerValue };
}

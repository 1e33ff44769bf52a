// Loading a model directory (config.json + safetensors) onto a backend as a CausalLM, and where the embedded
// default model lives.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/backend.ts';
import { getBackend, type DeviceChoice } from '../backend/registry.ts';
import type { FloatDType } from '../core/dtype.ts';
import type { Tensor } from '../core/tensor.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { ModelConfig } from '../io/config.ts';
import { Attention, type AttentionBlock, type AttentionWeights } from '../nn/attention.ts';
import { MlaAttention, type MlaWeights } from '../nn/mla-attention.ts';
import { MoeLayer } from '../moe/moe-layer.ts';
import { DecoderLM, type DecoderLayer } from './decoder.ts';
import { architectureOf } from './registry.ts';
import type { ArchitectureSpec } from './spec.ts';
import { WeightReader, type Weights } from './weights.ts';

/** The small MoE checkpoint shipped with moets (see assets/default-model/README.md). */
export const DEFAULT_MODEL_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'assets', 'default-model');

export interface LoadOptions {
  device?: DeviceChoice;
  /** dtype the weights are kept and computed in; default f32 (the CPU computes in f32 anyway). */
  dtype?: FloatDType;
}

export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<DecoderLM> {
  const config = ModelConfig.read(dir);
  const spec = architectureOf(config);
  const backend = getBackend(opts.device ?? 'cpu');
  const checkpoint = Checkpoint.open(dir);
  try {
    const reader = new WeightReader(checkpoint, backend, opts.dtype ?? 'f32', spec.weights);
    return buildDecoder(backend, spec, reader);
  } finally {
    checkpoint.close();
  }
}

/** The model `spec` describes, its weights read through `r` (a checkpoint, or random-weights.ts). */
export function buildDecoder(backend: Backend, spec: ArchitectureSpec, r: Weights): DecoderLM {
  const { hiddenSize: D, vocabSize: V } = spec;
  const embed = r.tensor('model.embed_tokens.weight', [V, D]);
  const lmHead = spec.tieWordEmbeddings && !r.has('lm_head.weight') ? embed : r.tensor('lm_head.weight', [V, D]);
  const invFreq = backend.upload(spec.attention.rope.invFreq, [spec.attention.rope.invFreq.length], 'f32');
  const layers = spec.layers.map((layer, i): DecoderLayer => {
    const p = `model.layers.${i}`;
    return {
      inputNorm: r.tensor(`${p}.input_layernorm.weight`, [D]),
      postAttentionNorm: r.tensor(`${p}.post_attention_layernorm.weight`, [D]),
      attention: attentionBlock(backend, spec, r, `${p}.self_attn`, invFreq, layer.slidingWindow),
      ffn: layer.ffn.kind === 'dense'
        ? { kind: 'dense', weights: r.swiGlu(`${p}.mlp`, layer.ffn.intermediateSize, D) }
        : { kind: 'moe', layer: moeLayer(backend, layer.ffn, r, `${p}.mlp`, D) },
    };
  });
  return new DecoderLM(backend, spec, { embed, lmHead, finalNorm: r.tensor('model.norm.weight', [D]), layers });
}

function attentionBlock(backend: Backend, spec: ArchitectureSpec, r: Weights, p: string, invFreq: Tensor, window: number | undefined): AttentionBlock {
  if (spec.attention.mla) return new MlaAttention(backend, spec.attention, mlaWeights(spec, r, p), invFreq);
  return new Attention(backend, spec.attention, attentionWeights(spec, r, p), invFreq, spec.rmsNormEps, window);
}

/** Multi-head latent attention weights (DeepSeek); qkvBias: biases on q_a_proj and kv_a_proj_with_mqa. */
function mlaWeights(spec: ArchitectureSpec, r: Weights, p: string): MlaWeights {
  const a = spec.attention;
  const m = a.mla!;
  const [D, H, R, Rq] = [spec.hiddenSize, a.numHeads, m.kvLoraRank, m.qLoraRank];
  const qOut = H * (m.qkNopeHeadDim + m.qkRopeHeadDim);
  const kvA = R + m.qkRopeHeadDim;
  return {
    query: Rq === undefined
      ? { kind: 'full', q: r.tensor(`${p}.q_proj.weight`, [qOut, D]) }
      : {
        kind: 'lora', a: r.tensor(`${p}.q_a_proj.weight`, [Rq, D]), norm: r.tensor(`${p}.q_a_layernorm.weight`, [Rq]),
        b: r.tensor(`${p}.q_b_proj.weight`, [qOut, Rq]), ...(a.qkvBias ? { aBias: r.tensor(`${p}.q_a_proj.bias`, [Rq]) } : {}),
      },
    kvA: r.tensor(`${p}.kv_a_proj_with_mqa.weight`, [kvA, D]),
    ...(a.qkvBias ? { kvABias: r.tensor(`${p}.kv_a_proj_with_mqa.bias`, [kvA]) } : {}),
    kvNorm: r.tensor(`${p}.kv_a_layernorm.weight`, [R]),
    kvB: r.tensor(`${p}.kv_b_proj.weight`, [H * (m.qkNopeHeadDim + m.vHeadDim), R]),
    o: r.tensor(`${p}.o_proj.weight`, [D, H * m.vHeadDim]),
    ...(a.outputBias ? { oBias: r.tensor(`${p}.o_proj.bias`, [D]) } : {}),
  };
}

/** Standard attention's weights, q, k and v (and their biases) stacked by rows for one linearSplit. */
function attentionWeights(spec: ArchitectureSpec, r: Weights, p: string): AttentionWeights {
  const a = spec.attention;
  const [D, qOut, kvOut] = [spec.hiddenSize, a.numHeads * a.headDim, a.numKvHeads * a.headDim];
  const qkvSizes = [qOut, kvOut, kvOut] as const;
  const qkv = (suffix: string, cols: number[]) => r.stacked(['q', 'k', 'v'].map((x, i) => ({ name: `${p}.${x}_proj.${suffix}`, shape: [qkvSizes[i]!, ...cols] })));
  const [qNorm, kNorm] = a.qkNorm === 'per-head' ? [a.headDim, a.headDim] : [qOut, kvOut];
  return {
    qkv: qkv('weight', [D]),
    qkvSizes,
    o: r.tensor(`${p}.o_proj.weight`, [D, qOut]),
    ...(a.qkvBias ? { qkvBias: qkv('bias', []) } : {}),
    ...(a.outputBias ? { oBias: r.tensor(`${p}.o_proj.bias`, [D]) } : {}),
    ...(a.qkNorm !== 'none' ? { qNorm: r.tensor(`${p}.q_norm.weight`, [qNorm]), kNorm: r.tensor(`${p}.k_norm.weight`, [kNorm]) } : {}),
    ...(a.sinks ? { sinks: r.tensor(`${p}.sinks`, [a.numHeads]) } : {}),
  };
}

function moeLayer(backend: Backend, ffn: Extract<ArchitectureSpec['layers'][number]['ffn'], { kind: 'moe' }>, r: Weights, p: string, D: number): MoeLayer {
  const { numExperts: E, expertIntermediateSize: F } = ffn;
  const shared = ffn.sharedExpert;
  return new MoeLayer(backend, ffn, {
    router: r.tensor(`${p}.gate.weight`, [E, D], ffn.routerInF32 ? 'f32' : undefined),
    ...(ffn.routerBias ? { routerBias: r.tensor(`${p}.gate.bias`, [E]) } : {}),
    ...(ffn.selectionBias ? { selectionBias: r.tensor(`${p}.gate.e_score_correction_bias`, [E], 'f32') } : {}),
    ...r.experts(`${p}.experts`, E, F, D),
    ...(ffn.expertBias ? { gateUpBias: r.tensor(`${p}.experts.gate_up_proj_bias`, [E, 2 * F]), downBias: r.tensor(`${p}.experts.down_proj_bias`, [E, D]) } : {}),
    ...(shared ? { shared: r.swiGlu(`${p}.shared_expert`, shared.intermediateSize, D) } : {}),
    ...(shared?.gated ? { sharedGate: r.tensor(`${p}.shared_expert_gate.weight`, [1, D]) } : {}),
  });
}

// Causal self-attention with grouped KV heads, RoPE, optional q/k RMSNorm, qkv clipping and sliding window.
// Follows transformers' Llama-family attention (modeling_mixtral.py, modeling_qwen3_moe.py, modeling_olmoe.py).
//
// x: [T, D]  T = new tokens, D = hidden, H = query heads, Hkv = key/value heads, Dh = head dim.
import type { Backend } from '../backend/backend.ts';
import type { FloatDType } from '../core/dtype.ts';
import type { Tensor } from '../core/tensor.ts';
import type { AttentionSpec } from '../models/spec.ts';
import type { LayerKV } from './kv-cache.ts';

export interface AttentionWeights {
  q: Tensor; k: Tensor; v: Tensor; o: Tensor;
  qBias?: Tensor; kBias?: Tensor; vBias?: Tensor; oBias?: Tensor;
  /** [Dh] for per-head norm, [H*Dh] / [Hkv*Dh] for whole-projection norm. */
  qNorm?: Tensor; kNorm?: Tensor;
  /** f32 [H]: per-head sink logits (GPT-OSS). */
  sinks?: Tensor;
}

/** What the decoder needs of an attention block (standard here; multi-head latent attention elsewhere). */
export interface AttentionBlock {
  forward(x: Tensor, positions: Tensor, kv: LayerKV, start: number): Tensor;
}

export class Attention implements AttentionBlock {
  constructor(
    private readonly backend: Backend,
    private readonly spec: AttentionSpec,
    private readonly w: AttentionWeights,
    private readonly invFreq: Tensor,
    private readonly normEps: number,
    private readonly slidingWindow: number | undefined,
  ) {}

  /** x [T, D] at positions [start, start+T) → [T, D]; appends this call's keys/values to `kv`. */
  forward(x: Tensor, positions: Tensor, kv: LayerKV, start: number): Tensor {
    const b = this.backend;
    const { numHeads: H, numKvHeads: Hkv, headDim: Dh } = this.spec;
    const T = x.dim(0);
    let q = b.linear(x, this.w.q, this.w.qBias);
    let k = b.linear(x, this.w.k, this.w.kBias);
    let v = b.linear(x, this.w.v, this.w.vBias);
    if (this.spec.qkNorm === 'whole') {
      q = b.rmsNorm(q, this.w.qNorm!, this.normEps);
      k = b.rmsNorm(k, this.w.kNorm!, this.normEps);
    }
    const clip = this.spec.clipQkv;
    if (clip !== undefined) [q, k, v] = [q, k, v].map((t) => b.clamp(t, -clip, clip)) as [Tensor, Tensor, Tensor];
    if (this.spec.qkNorm === 'per-head') {
      q = b.rmsNorm(q.reshape([T * H, Dh]), this.w.qNorm!, this.normEps);
      k = b.rmsNorm(k.reshape([T * Hkv, Dh]), this.w.kNorm!, this.normEps);
    }
    q = b.rope(q.reshape([T, H, Dh]), positions, this.invFreq, this.spec.rope);
    k = b.rope(k.reshape([T, Hkv, Dh]), positions, this.invFreq, this.spec.rope);
    kv.append(b, k, v.reshape([T, Hkv, -1]), start, x.dtype as FloatDType);
    const out = b.attention(q, kv.keys!, kv.values!, {
      scale: this.spec.scale ?? 1 / Math.sqrt(Dh),
      queryStart: start,
      kvLength: start + T,
      ...(this.slidingWindow !== undefined ? { window: this.slidingWindow } : {}),
      ...(this.w.sinks ? { sinks: this.w.sinks } : {}),
    });
    return b.linear(out.reshape([T, -1]), this.w.o, this.w.oBias);
  }
}

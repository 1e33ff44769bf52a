// Causal self-attention with grouped KV heads, RoPE, optional q/k RMSNorm, qkv clipping and sliding window.
// Follows transformers' Llama-family attention (modeling_mixtral.py, modeling_qwen3_moe.py, modeling_olmoe.py).
//
// Every step reads its positions and cache rows from device tensors (StepContext), never from host numbers, so a
// captured step replays correctly with new ones.
//
// x: [N, D]  N = B·T rows, B = sequences, T = new tokens per sequence, D = hidden, H = query heads,
// Hkv = key/value heads, Dh = head dim, Dv = value head dim, S = cache capacity per sequence.
import type { Backend } from '../backend/backend.ts';
import { replaced, type Tensor } from '../core/tensor.ts';
import type { AttentionSpec } from '../models/spec.ts';
import type { LayerCacheShape, LayerKV } from './kv-cache.ts';

export interface AttentionWeights {
  /** q, k, v projections stacked by rows: [H·Dh + Hkv·Dh + Hkv·Dv, D], one linearSplit into qkvSizes. */
  qkv: Tensor;
  /** Rows of q, k and v in qkv: [H·Dh, Hkv·Dh, Hkv·Dv]. */
  qkvSizes: readonly [number, number, number];
  o: Tensor;
  /** [ΣqkvSizes]: the q, k, v biases stacked as qkv. */
  qkvBias?: Tensor;
  oBias?: Tensor;
  /** [Dh] for per-head norm, [H*Dh] / [Hkv*Dh] for whole-projection norm. */
  qNorm?: Tensor; kNorm?: Tensor;
  /** f32 [H]: per-head sink logits (GPT-OSS). */
  sinks?: Tensor;
}

/** One step's view of the batch: sizes, and the device tensors that say where each new token goes. */
export interface StepContext {
  batch: number;
  tokens: number;
  /** i32 [B, T]: the absolute position of each new token. */
  positions: Tensor;
  /** i32 [B·T]: the cache row each new token's keys and values are written to (b·S + position). */
  rows: Tensor;
}

/** What the decoder needs of an attention block (standard here; multi-head latent attention elsewhere). */
export interface AttentionBlock {
  /** What this block caches per position. */
  readonly cacheShape: LayerCacheShape;
  /** x [B·T, D] → [B·T, D]; writes this step's keys/values into `kv` and attends over each sequence's cache. */
  forward(x: Tensor, step: StepContext, kv: LayerKV): Tensor;
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

  get cacheShape(): LayerCacheShape {
    const { numKvHeads: Hkv, headDim: Dh } = this.spec;
    return { keys: [Hkv, Dh], values: [Hkv, this.w.qkvSizes[2] / Hkv] };
  }

  forward(x: Tensor, step: StepContext, kv: LayerKV): Tensor {
    const b = this.backend;
    const { numHeads: H, numKvHeads: Hkv, headDim: Dh } = this.spec;
    const [B, T, N] = [step.batch, step.tokens, x.dim(0)];
    let [q, k, v] = b.linearSplit(x, this.w.qkv, this.w.qkvSizes, this.w.qkvBias) as [Tensor, Tensor, Tensor];
    if (this.spec.qkNorm === 'whole') {
      q = replaced(q, b.rmsNorm(q, this.w.qNorm!, this.normEps));
      k = replaced(k, b.rmsNorm(k, this.w.kNorm!, this.normEps));
    }
    const clip = this.spec.clipQkv;
    if (clip !== undefined) [q, k, v] = [q, k, v].map((t) => replaced(t, b.clamp(t, -clip, clip))) as [Tensor, Tensor, Tensor];
    if (this.spec.qkNorm === 'per-head') {
      q = replaced(q, b.rmsNorm(q.reshape([N * H, Dh]), this.w.qNorm!, this.normEps));
      k = replaced(k, b.rmsNorm(k.reshape([N * Hkv, Dh]), this.w.kNorm!, this.normEps));
    }
    const positions = step.positions.reshape([N]);
    q = replaced(q, b.rope(q.reshape([N, H, Dh]), positions, this.invFreq, this.spec.rope));
    k = replaced(k, b.rope(k.reshape([N, Hkv, Dh]), positions, this.invFreq, this.spec.rope));
    kv.write(b, k, v.reshape([N, Hkv, -1]), step.rows);
    k.dispose();
    v.dispose();
    const cached = kv.sequences();
    const out = replaced(q, b.attention(q.reshape([B, T, H, Dh]), cached.keys, cached.values, {
      scale: this.spec.scale ?? 1 / Math.sqrt(Dh),
      positions: step.positions,
      ...(this.slidingWindow !== undefined ? { window: this.slidingWindow } : {}),
      ...(this.w.sinks ? { sinks: this.w.sinks } : {}),
    }));
    return replaced(out, b.linear(out.reshape([N, -1]), this.w.o, this.w.oBias));
  }
}

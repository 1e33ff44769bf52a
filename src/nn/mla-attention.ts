// Multi-head latent attention (DeepSeek-V2/V3), as transformers' DeepseekV3Attention computes it:
//   q       = q_b_proj(rmsNorm(q_a_proj(x)))  (or q_proj(x) without q LoRA), per head [q_nope | q_pe]
//   [c | kp] = kv_a_proj_with_mqa(x);  latent = rmsNorm(c);  k_pe = rope(kp), one head shared by all heads
//   [k_nope | v] per head = kv_b_proj(latent)
//   out = o_proj(softmax(scale · [q_nope | rope(q_pe)] · [k_nope | k_pe]ᵀ) · v)
// RoPE touches only the q_pe / k_pe dims. Interleaved pairing rotates pairs (2i, 2i+1) in place; transformers'
// apply_rotary_pos_emb_interleave writes the same rotated pairs de-interleaved (evens, then odds). Both q and k get
// that same permutation, so every q·k — and the attention output — is the same.
//
// KV cache: the LayerKV of an MLA layer holds the compressed latent (after kv_a_layernorm) in its `keys` slot,
// [B·S, 1, R], and the rotated shared RoPE key in its `values` slot, [B·S, 1, Dr] — R + Dr numbers per position
// instead of H·(Dqk + Dv). Each forward call expands the cached latent with kv_b_proj into per-head keys and values
// (as transformers does after its cache update) — all S rows of the storage, whatever the length, so no per-step
// host number sizes a kernel (a captured step replays unchanged); attention reads only the rows up to each query's
// position. Absorbing kv_b_proj into the query and output projections, which avoids the expansion, is a later
// optimisation.
//
// x: [N, D]  N = B·T rows, B = sequences, T = new tokens per sequence, S = cache capacity per sequence, D = hidden,
// H = heads, R = kv_lora_rank, Rq = q_lora_rank, Dn = qk_nope_head_dim, Dr = qk_rope_head_dim, Dqk = Dn + Dr,
// Dv = v_head_dim.
import type { Backend } from '../backend/backend.ts';
import { assert } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { AttentionSpec, MlaSpec } from '../models/spec.ts';
import type { AttentionBlock, StepContext } from './attention.ts';
import type { LayerCacheShape, LayerKV } from './kv-cache.ts';

/** transformers builds q_a_layernorm and kv_a_layernorm with RMSNorm's default eps, not config.rms_norm_eps. */
export const LATENT_NORM_EPS = 1e-6;

export interface MlaWeights {
  /** q_proj [H*Dqk, D]; or q_a_proj [Rq, D] (+ bias [Rq]), q_a_layernorm [Rq], q_b_proj [H*Dqk, Rq]. */
  query: { kind: 'full'; q: Tensor } | { kind: 'lora'; a: Tensor; aBias?: Tensor; norm: Tensor; b: Tensor };
  /** kv_a_proj_with_mqa [R + Dr, D] (+ bias [R + Dr]); kv_a_layernorm [R]; kv_b_proj [H*(Dn + Dv), R]. */
  kvA: Tensor;
  kvABias?: Tensor;
  kvNorm: Tensor;
  kvB: Tensor;
  /** o_proj [D, H*Dv] (+ bias [D]). */
  o: Tensor;
  oBias?: Tensor;
}

export class MlaAttention implements AttentionBlock {
  private readonly mla: MlaSpec;

  constructor(
    private readonly backend: Backend,
    private readonly spec: AttentionSpec,
    private readonly w: MlaWeights,
    private readonly invFreq: Tensor,
  ) {
    assert(spec.mla !== undefined, 'MlaAttention needs spec.mla');
    assert(spec.rope.rotaryDim === spec.mla.qkRopeHeadDim, `MLA rope dim ${spec.rope.rotaryDim} ≠ qk_rope_head_dim ${spec.mla.qkRopeHeadDim}`);
    this.mla = spec.mla;
  }

  get cacheShape(): LayerCacheShape {
    return { keys: [1, this.mla.kvLoraRank], values: [1, this.mla.qkRopeHeadDim] };
  }

  forward(x: Tensor, step: StepContext, kv: LayerKV): Tensor {
    const b = this.backend;
    const H = this.spec.numHeads;
    const { kvLoraRank: R, qkNopeHeadDim: Dn, qkRopeHeadDim: Dr, vHeadDim: Dv } = this.mla;
    const [B, T, N] = [step.batch, step.tokens, x.dim(0)];
    const positions = step.positions.reshape([N]);

    const q = this.queries(x); // [N, H*Dqk]
    const rows = q.reshape([N * H, Dn + Dr]);
    const qNope = b.sliceColumns(rows, 0, Dn);
    const qPeRaw = b.sliceColumns(rows, Dn, Dr);
    const qPe = this.rope(qPeRaw.reshape([N, H, Dr]), positions);
    const query = b.concatHeads(qNope.reshape([N, H, Dn]), qPe); // [N, H, Dqk]

    const compressed = b.linear(x, this.w.kvA, this.w.kvABias); // [N, R + Dr]
    const [c, kPeRaw] = [b.sliceColumns(compressed, 0, R), b.sliceColumns(compressed, R, Dr)];
    const latent = b.rmsNorm(c, this.w.kvNorm, LATENT_NORM_EPS); // [N, R]
    const kPe = this.rope(kPeRaw.reshape([N, 1, Dr]), positions);
    kv.write(b, latent.reshape([N, 1, R]), kPe, step.rows);

    const { keys, values } = this.expand(kv);
    const S = keys.dim(0) / B;
    const out = b.attention(query.reshape([B, T, H, Dn + Dr]), keys.reshape([B, S, H, Dn + Dr]), values.reshape([B, S, H, Dv]), {
      scale: this.spec.scale ?? (Dn + Dr) ** -0.5, positions: step.positions,
    });
    for (const t of [q, qNope, qPeRaw, qPe, query, compressed, c, kPeRaw, latent, kPe, keys, values]) t.dispose();
    const y = b.linear(out.reshape([N, H * Dv]), this.w.o, this.w.oBias);
    out.dispose();
    return y;
  }

  /** q [N, H*Dqk] from x [N, D]. */
  private queries(x: Tensor): Tensor {
    const b = this.backend;
    const wq = this.w.query;
    if (wq.kind === 'full') return b.linear(x, wq.q);
    const low = b.linear(x, wq.a, wq.aBias); // [N, Rq]
    const normed = b.rmsNorm(low, wq.norm, LATENT_NORM_EPS);
    const q = b.linear(normed, wq.b);
    low.dispose();
    normed.dispose();
    return q;
  }

  /** Cached latent [B·S, 1, R] and k_pe [B·S, 1, Dr] → keys [B·S, H, Dqk] (k_pe on every head) and values [B·S·H, Dv]. */
  private expand(kv: LayerKV): { keys: Tensor; values: Tensor } {
    const b = this.backend;
    const H = this.spec.numHeads;
    const { kvLoraRank: R, qkNopeHeadDim: Dn, vHeadDim: Dv } = this.mla;
    const rowsCached = kv.keys.dim(0); // B·S
    const perHead = b.linear(kv.keys.reshape([rowsCached, R]), this.w.kvB); // [B·S, H*(Dn + Dv)]
    const rows = perHead.reshape([rowsCached * H, Dn + Dv]);
    const kNope = b.sliceColumns(rows, 0, Dn);
    const keys = b.concatHeads(kNope.reshape([rowsCached, H, Dn]), kv.values);
    const values = b.sliceColumns(rows, Dn, Dv);
    for (const t of [perHead, kNope]) t.dispose();
    return { keys, values };
  }

  private rope(x: Tensor, positions: Tensor): Tensor {
    return this.backend.rope(x, positions, this.invFreq, this.spec.rope);
  }
}

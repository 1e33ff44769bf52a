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
// [S, 1, R], and the rotated shared RoPE key in its `values` slot, [S, 1, Dr] — R + Dr numbers per position instead
// of H·(Dqk + Dv). Each forward call expands the whole cached latent with kv_b_proj into per-head keys and values
// (as transformers does after its cache update). Absorbing kv_b_proj into the query and output projections, which
// avoids the expansion, is a later optimisation.
//
// x: [T, D]  T = new tokens, S = cached + new positions, D = hidden, H = heads, R = kv_lora_rank, Rq = q_lora_rank,
// Dn = qk_nope_head_dim, Dr = qk_rope_head_dim, Dqk = Dn + Dr, Dv = v_head_dim.
import type { Backend } from '../backend/backend.ts';
import { assert } from '../core/errors.ts';
import type { FloatDType } from '../core/dtype.ts';
import type { Tensor } from '../core/tensor.ts';
import type { AttentionSpec, MlaSpec } from '../models/spec.ts';
import type { AttentionBlock } from './attention.ts';
import type { LayerKV } from './kv-cache.ts';

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

  /** x [T, D] at positions [start, start+T) → [T, D]; appends this call's latent and k_pe to `kv`. */
  forward(x: Tensor, positions: Tensor, kv: LayerKV, start: number): Tensor {
    const b = this.backend;
    const H = this.spec.numHeads;
    const { kvLoraRank: R, qkNopeHeadDim: Dn, qkRopeHeadDim: Dr, vHeadDim: Dv } = this.mla;
    const [T, S] = [x.dim(0), start + x.dim(0)];

    const q = this.queries(x); // [T, H*Dqk]
    const rows = q.reshape([T * H, Dn + Dr]);
    const qNope = b.sliceColumns(rows, 0, Dn);
    const qPeRaw = b.sliceColumns(rows, Dn, Dr);
    const qPe = this.rope(qPeRaw.reshape([T, H, Dr]), positions);
    const query = b.concatHeads(qNope.reshape([T, H, Dn]), qPe); // [T, H, Dqk]

    const compressed = b.linear(x, this.w.kvA, this.w.kvABias); // [T, R + Dr]
    const [c, kPeRaw] = [b.sliceColumns(compressed, 0, R), b.sliceColumns(compressed, R, Dr)];
    const latent = b.rmsNorm(c, this.w.kvNorm, LATENT_NORM_EPS); // [T, R]
    const kPe = this.rope(kPeRaw.reshape([T, 1, Dr]), positions);
    kv.append(b, latent.reshape([T, 1, R]), kPe, start, x.dtype as FloatDType);

    const { keys, values } = this.expand(kv, S);
    const out = b.attention(query, keys, values.reshape([S, H, Dv]), { scale: this.spec.scale ?? (Dn + Dr) ** -0.5, queryStart: start, kvLength: S });
    for (const t of [q, qNope, qPeRaw, qPe, query, compressed, c, kPeRaw, latent, kPe, keys, values]) t.dispose();
    const y = b.linear(out.reshape([T, H * Dv]), this.w.o, this.w.oBias);
    out.dispose();
    return y;
  }

  /** q [T, H*Dqk] from x [T, D]. */
  private queries(x: Tensor): Tensor {
    const b = this.backend;
    const wq = this.w.query;
    if (wq.kind === 'full') return b.linear(x, wq.q);
    const low = b.linear(x, wq.a, wq.aBias); // [T, Rq]
    const normed = b.rmsNorm(low, wq.norm, LATENT_NORM_EPS);
    const q = b.linear(normed, wq.b);
    low.dispose();
    normed.dispose();
    return q;
  }

  /** Cached latent [S, 1, R] and k_pe [S, 1, Dr] → keys [S, H, Dqk] (k_pe on every head) and values [S*H, Dv]. */
  private expand(kv: LayerKV, S: number): { keys: Tensor; values: Tensor } {
    const b = this.backend;
    const H = this.spec.numHeads;
    const { kvLoraRank: R, qkNopeHeadDim: Dn, vHeadDim: Dv } = this.mla;
    const latent = b.sliceRows(kv.keys!, 0, S);
    const kPe = b.sliceRows(kv.values!, 0, S);
    const perHead = b.linear(latent.reshape([S, R]), this.w.kvB); // [S, H*(Dn + Dv)]
    const rows = perHead.reshape([S * H, Dn + Dv]);
    const kNope = b.sliceColumns(rows, 0, Dn);
    const keys = b.concatHeads(kNope.reshape([S, H, Dn]), kPe);
    const values = b.sliceColumns(rows, Dn, Dv);
    for (const t of [latent, kPe, perHead, kNope]) t.dispose();
    return { keys, values };
  }

  private rope(x: Tensor, positions: Tensor): Tensor {
    return this.backend.rope(x, positions, this.invFreq, this.spec.rope);
  }
}

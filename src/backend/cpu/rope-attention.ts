// CPU reference kernels for rotary position embedding and causal grouped-query attention.
//
// rope: x [T, H, Dh]. attention: q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv].
// B = sequences, T = queries per sequence, S = cache rows per sequence, H = query heads, Hkv = key/value heads
// (H % Hkv == 0), Dh = key head dim, Dv = value head dim.
import type { AttentionOptions, AttentionSizes, RopeOptions } from '../backend.ts';

export function ropeValues(
  x: Float32Array, T: number, H: number, Dh: number,
  positions: Int32Array, invFreq: Float32Array, opts: RopeOptions,
): Float32Array {
  const out = Float32Array.from(x);
  const half = opts.rotaryDim / 2;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[t]! * invFreq[i]!);
      const cos = Math.fround(Math.cos(angle) * opts.attentionScaling);
      const sin = Math.fround(Math.sin(angle) * opts.attentionScaling);
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * Dh;
        const [a, b] = opts.pairing === 'half' ? [o + i, o + i + half] : [o + 2 * i, o + 2 * i + 1];
        const xa = x[a]!;
        const xb = x[b]!;
        out[a] = xa * cos - xb * sin;
        out[b] = xb * cos + xa * sin;
      }
    }
  }
  return out;
}

/** q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv] → [B, T, H, Dv]; query (b, t) sees rows ≤ positions[b·T + t]. */
export function attentionValues(
  q: Float32Array, k: Float32Array, v: Float32Array, positions: Int32Array,
  { B, T, S, H, Hkv, Dh, Dv }: AttentionSizes, opts: Pick<AttentionOptions, 'scale' | 'window'>, sinks?: Float32Array,
): Float32Array {
  const out = new Float32Array(B * T * H * Dv);
  const group = H / Hkv;
  const scores = new Float32Array(S);
  for (let b = 0; b < B; b++) {
    const kv = b * S; // the sequence's first cache row
    for (let t = 0; t < T; t++) {
      const row = b * T + t; // the query's row in q and out
      const pos = positions[row]!;
      const first = opts.window === undefined ? 0 : Math.max(0, pos - opts.window + 1);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        const qo = (row * H + h) * Dh;
        const sink = sinks ? sinks[h]! : -Infinity;
        let max = sink;
        for (let j = first; j <= pos; j++) {
          const ko = ((kv + j) * Hkv + kvh) * Dh;
          let dot = 0;
          for (let d = 0; d < Dh; d++) dot += q[qo + d]! * k[ko + d]!;
          scores[j] = dot * opts.scale;
          if (scores[j]! > max) max = scores[j]!;
        }
        let sum = sinks ? Math.exp(sink - max) : 0;
        for (let j = first; j <= pos; j++) sum += (scores[j] = Math.exp(scores[j]! - max));
        const oo = (row * H + h) * Dv;
        for (let j = first; j <= pos; j++) {
          const p = scores[j]! / sum;
          const vo = ((kv + j) * Hkv + kvh) * Dv;
          for (let d = 0; d < Dv; d++) out[oo + d] += p * v[vo + d]!;
        }
      }
    }
  }
  return out;
}

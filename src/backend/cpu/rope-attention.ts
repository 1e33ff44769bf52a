// CPU reference kernels for rotary position embedding and causal grouped-query attention.
//
// x, q: [T, H, Dh]; k: [S, Hkv, Dh]; v: [S, Hkv, Dv]; H = query heads, Hkv = key/value heads (H % Hkv == 0).
import type { AttentionOptions, RopeOptions } from '../backend.ts';

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

export function attentionValues(
  q: Float32Array, k: Float32Array, v: Float32Array,
  T: number, H: number, Hkv: number, Dh: number, Dv: number, opts: AttentionOptions, sinks?: Float32Array,
): Float32Array {
  const out = new Float32Array(T * H * Dv);
  const group = H / Hkv;
  const scores = new Float32Array(opts.kvLength);
  for (let t = 0; t < T; t++) {
    const pos = opts.queryStart + t;
    const first = opts.window === undefined ? 0 : Math.max(0, pos - opts.window + 1);
    const last = Math.min(pos, opts.kvLength - 1);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      const qo = (t * H + h) * Dh;
      const sink = sinks ? sinks[h]! : -Infinity;
      let max = sink;
      for (let j = first; j <= last; j++) {
        const ko = (j * Hkv + kvh) * Dh;
        let dot = 0;
        for (let d = 0; d < Dh; d++) dot += q[qo + d]! * k[ko + d]!;
        scores[j] = dot * opts.scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let sum = sinks ? Math.exp(sink - max) : 0;
      for (let j = first; j <= last; j++) sum += (scores[j] = Math.exp(scores[j]! - max));
      const oo = (t * H + h) * Dv;
      for (let j = first; j <= last; j++) {
        const p = scores[j]! / sum;
        const vo = (j * Hkv + kvh) * Dv;
        for (let d = 0; d < Dv; d++) out[oo + d] += p * v[vo + d]!;
      }
    }
  }
  return out;
}

// Plain-loop references for the conformance suite, in float64, written independently of src/ (no backend code).
// Float formats are decoded from their bits by definition and rounded to nearest-even by searching the sorted
// codes, so they check src/core/dtype.ts rather than repeat it.
//
// Legend: B = sequences, T = tokens, S = cache rows per sequence, D = feature size, H = query heads, Hkv = key/value heads, Dh = head dim, Dv = value dim,
// E = experts, K = top-k, N = routed rows (T*K), F = expert FFN size.
import type { RopeOptions } from '../../src/backend/backend.ts';

const view = new DataView(new ArrayBuffer(4));

export function bf16BitsToNumber(bits: number): number {
  view.setUint32(0, (bits & 0xffff) * 65536);
  return view.getFloat32(0);
}

export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** The f32 nearest to x (through DataView, not Math.fround). */
export function roundToF32(x: number): number {
  view.setFloat32(0, x);
  return view.getFloat32(0);
}

interface HalfFormat {
  decode(bits: number): number;
  maxFinite: number;       // largest finite positive code; the next code is +Infinity
  beyondMax: number;       // the value the code after maxFinite would have with an unbounded exponent
  nan: number;
}

const BF16: HalfFormat = { decode: bf16BitsToNumber, maxFinite: 0x7f7f, beyondMax: 2 ** 128, nan: 0x7fc0 };
const F16: HalfFormat = { decode: f16BitsToNumber, maxFinite: 0x7bff, beyondMax: 2 ** 16, nan: 0x7e00 };

/** Bits of the format value nearest to x, ties to the even code; past the largest finite value, ±Infinity. */
function nearestBits(x: number, format: HalfFormat): number {
  if (Number.isNaN(x)) return format.nan;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(x);
  if (magnitude === Infinity) return sign | (format.maxFinite + 1);
  let lo = 0;
  let hi = format.maxFinite;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (format.decode(mid) <= magnitude) lo = mid;
    else hi = mid - 1;
  }
  const below = format.decode(lo);
  if (below === magnitude) return sign | lo;
  const above = lo === format.maxFinite ? format.beyondMax : format.decode(lo + 1);
  const toBelow = magnitude - below;
  const toAbove = above - magnitude;
  const pick = toBelow < toAbove ? lo : toAbove < toBelow ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | pick;
}

export const toBf16Bits = (x: number): number => nearestBits(x, BF16);
export const toF16Bits = (x: number): number => nearestBits(x, F16);

// ---- dense ops ---------------------------------------------------------------------------------------

/** x [M, K] · w [N, K]ᵀ (+ bias [N]) → [M, N]. */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, M: number, N: number, K: number, bias?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) sum += x[m * K + k]! * w[n * K + k]!;
      out[m * N + n] = sum;
    }
  }
  return out;
}

/** Each row of D: x / sqrt(mean(x²) + eps) * w. */
export function rmsNormRef(x: ArrayLike<number>, w: ArrayLike<number>, D: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let squares = 0;
    for (let d = 0; d < D; d++) squares += x[r * D + d]! ** 2;
    const scale = 1 / Math.sqrt(squares / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d]! * scale * w[d]!;
  }
  return out;
}

/**
 * RoPE on x [T, H, Dh]. The angle position·invFreq is formed in f32, as transformers does (inv_freq @ positions
 * in float32); cos, sin and the rotation are float64. 'half' pairs (i, i + R/2), 'interleaved' pairs (2i, 2i + 1).
 */
export function ropeRef(
  x: ArrayLike<number>, T: number, H: number, Dh: number,
  positions: ArrayLike<number>, invFreq: ArrayLike<number>, opts: RopeOptions,
): Float64Array {
  const out = Float64Array.from(x);
  const pairs = opts.rotaryDim / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const base = (t * H + h) * Dh;
      for (let i = 0; i < pairs; i++) {
        const angle = roundToF32(positions[t]! * invFreq[i]!);
        const cos = Math.cos(angle) * opts.attentionScaling;
        const sin = Math.sin(angle) * opts.attentionScaling;
        const a = opts.pairing === 'half' ? base + i : base + 2 * i;
        const b = opts.pairing === 'half' ? base + i + pairs : base + 2 * i + 1;
        out[a] = x[a]! * cos - x[b]! * sin;
        out[b] = x[b]! * cos + x[a]! * sin;
      }
    }
  }
  return out;
}

/** Sizes of an attention call: B sequences of T queries and S cache rows. */
export interface AttentionRefSizes {
  B: number; T: number; S: number; H: number; Hkv: number; Dh: number; Dv: number;
}

/**
 * Causal grouped-query attention per sequence: q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv] → [B, T, H, Dv].
 * Query (b, t) at p = positions[b·T + t] attends to rows j ≤ p of sequence b (and j > p - window with a window);
 * with sinks, each head's sink logit joins the softmax denominator and attends to nothing.
 */
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, { B, T, S, H, Hkv, Dh, Dv }: AttentionRefSizes,
  positions: ArrayLike<number>, opts: { scale: number; window?: number }, sinks?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(B * T * H * Dv);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = b * T + t;
      const position = positions[row]!;
      for (let h = 0; h < H; h++) {
        const kvHead = Math.floor((h * Hkv) / H);
        const visible: number[] = [];
        for (let j = 0; j <= position; j++) if (opts.window === undefined || j > position - opts.window) visible.push(b * S + j);
        const logits = visible.map((r) => {
          let dot = 0;
          for (let d = 0; d < Dh; d++) dot += q[(row * H + h) * Dh + d]! * k[(r * Hkv + kvHead) * Dh + d]!;
          return dot * opts.scale;
        });
        if (sinks) logits.push(sinks[h]!);
        const probs = softmaxRow(logits);
        for (let d = 0; d < Dv; d++) {
          let sum = 0;
          visible.forEach((r, i) => (sum += probs[i]! * v[(r * Hkv + kvHead) * Dv + d]!));
          out[(row * H + h) * Dv + d] = sum;
        }
      }
    }
  }
  return out;
}

export function softmaxRow(row: readonly number[]): number[] {
  const max = Math.max(...row);
  const exps = row.map((s) => Math.exp(s - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

/** Softmax over each row of length D. */
export function softmaxRef(x: ArrayLike<number>, D: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) out.set(softmaxRow(Array.from({ length: D }, (_, d) => x[r * D + d]!)), r * D);
  return out;
}

export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
export const silu = (v: number): number => v * sigmoid(v);

/** x [R, 2F] → silu(gate) * up, [R, F]. */
export function siluMulRef(x: ArrayLike<number>, F: number): Float64Array {
  const R = x.length / (2 * F);
  const out = new Float64Array(R * F);
  for (let r = 0; r < R; r++) for (let f = 0; f < F; f++) out[r * F + f] = silu(x[r * 2 * F + f]!) * x[r * 2 * F + F + f]!;
  return out;
}

// ---- MoE ------------------------------------------------------------------------------------------------

/** Softmax over E logits, the K largest probabilities (ties: lower expert id first), optionally renormalised. */
export function routeRef(logits: ArrayLike<number>, T: number, E: number, K: number, normalize: boolean) {
  const experts = new Int32Array(T * K);
  const weights = new Float64Array(T * K);
  for (let t = 0; t < T; t++) {
    const probs = softmaxRow(Array.from({ length: E }, (_, e) => logits[t * E + e]!));
    const ranked = probs.map((p, e) => ({ p, e })).sort((a, b) => b.p - a.p || a.e - b.e).slice(0, K);
    const total = ranked.reduce((s, r) => s + r.p, 0);
    ranked.forEach((r, j) => {
      experts[t * K + j] = r.e;
      weights[t * K + j] = normalize ? r.p / total : r.p;
    });
  }
  return { experts, weights };
}

/** Slots t*K + j grouped by expert, in slot order within an expert, and where each expert's group starts. */
export function sortByExpertRef(experts: ArrayLike<number>, E: number) {
  const slots: number[] = [];
  const offsets = [0];
  for (let e = 0; e < E; e++) {
    for (let s = 0; s < experts.length; s++) if (experts[s] === e) slots.push(s);
    offsets.push(slots.length);
  }
  return { slots: Int32Array.from(slots), offsets: Int32Array.from(offsets) };
}

/** One SwiGLU FFN on x [D]: down · (silu(gate · x) * (up · x)); gateUp [2F, D] (gate rows, then up rows), down [D, F]. */
export function swigluRef(x: ArrayLike<number>, gateUp: ArrayLike<number>, down: ArrayLike<number>, D: number, F: number): Float64Array {
  const projected = linearRef(x, gateUp, 1, 2 * F, D);
  return linearRef(siluMulRef(projected, F), down, 1, D, F);
}

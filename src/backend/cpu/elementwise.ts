// CPU reference kernels for elementwise, normalisation and layout ops (f32 arithmetic).
import type { ClampedGlu } from '../backend.ts';
import { assert } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';

export function sameShape(a: Tensor, b: Tensor, op: string): void {
  assert(a.size === b.size && a.shape.join() === b.shape.join(), `${op}: ${a} and ${b} differ in shape`);
}

export function addValues(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

export function mulValues(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! * b[i]!;
  return out;
}

/** x [R, D] times s [R] row by row. */
export function scaleRowsValues(x: Float32Array, s: Float32Array, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < s.length; r++) {
    const f = s[r]!;
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d]! * f;
  }
  return out;
}

export function sigmoidValues(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]!));
  return out;
}

/** Softmax of each row of length D (max-subtracted). */
export function softmaxValues(x: Float32Array, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += D) {
    let max = -Infinity;
    for (let d = 0; d < D; d++) max = Math.max(max, x[o + d]!);
    let sum = 0;
    for (let d = 0; d < D; d++) sum += (out[o + d] = Math.exp(x[o + d]! - max));
    for (let d = 0; d < D; d++) out[o + d] = out[o + d]! / sum;
  }
  return out;
}

/** Each row of D values scaled by 1/sqrt(mean(x²) + eps), then by w (Hugging Face RMSNorm order). */
export function rmsNormValues(x: Float32Array, w: Float32Array, D: number, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += D) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[o + d]! * x[o + d]!;
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let d = 0; d < D; d++) out[o + d] = w[d]! * Math.fround(x[o + d]! * inv);
  }
  return out;
}

/** x [R, 2F] → silu(x[:, :F]) * x[:, F:] as [R, F]; clamped: (clamp(up, ±l) + 1) · g · σ(α·g), g = min(gate, l). */
export function siluMulValues(x: Float32Array, F: number, clamped?: ClampedGlu): Float32Array {
  const R = x.length / (2 * F);
  const out = new Float32Array(R * F);
  for (let r = 0; r < R; r++) {
    for (let f = 0; f < F; f++) {
      const gate = x[r * 2 * F + f]!;
      const up = x[r * 2 * F + F + f]!;
      if (clamped) {
        const g = Math.min(gate, clamped.limit);
        const u = Math.min(Math.max(up, -clamped.limit), clamped.limit);
        out[r * F + f] = (u + 1) * (g / (1 + Math.exp(-clamped.alpha * g)));
      } else {
        out[r * F + f] = (gate / (1 + Math.exp(-gate))) * up;
      }
    }
  }
  return out;
}

// CPU matrix products: dense `linear` (x · wᵀ) and the per-expert `groupedLinear`, in f32.
// Both reduce to one kernel, matmulTransposedInto, over row ranges.
//
// x: [M, K] rows of activations; w: [N, K] rows of weights (Hugging Face Linear layout); out: [M, N].

/** out[m, n] = Σ_k x[m, k] * w[n, k] (+ bias[n]), for rows m in [rowStart, rowEnd) of x and out. */
export function matmulTransposedInto(
  out: Float32Array, x: Float32Array, w: Float32Array, wOffset: number,
  rowStart: number, rowEnd: number, N: number, K: number, bias?: Float32Array,
): void {
  for (let m = rowStart; m < rowEnd; m++) {
    const xo = m * K;
    const oo = m * N;
    for (let n = 0; n < N; n++) {
      const wo = wOffset + n * K;
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[xo + k]! * w[wo + k]!;
      out[oo + n] = bias ? acc + bias[n]! : acc;
    }
  }
}

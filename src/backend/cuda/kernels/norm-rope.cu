// Row and activation kernels: rms_norm, softmax (last dim), silu_mul and clamped_glu (SwiGLU on a fused gate/up
// projection; GPT-OSS's clamped form) and rope, for f32, bf16 and f16 storage. Each reproduces the CPU reference
// (src/backend/cpu/elementwise.ts, rope-attention.ts) step by step and rounds once to the output dtype, to nearest
// even. Named <op>_<dtype> (rms_norm_<x>_<w>: the weight may have its own dtype), extern "C".
//
// This file is the "kernels" half; the launchers are in norm-rope.ts beside it. Compiled by NVRTC at run time
// (see ../compile-cache.ts), with dtypes.cuh (bf16/f16 through PTX cvt) and pack.cuh inlined by launch.ts.
//
// rms_norm runs a group of threads per row with 16-byte accesses (see its comment); softmax runs one block per row
// (blocks stride over the rows) with a block-wide reduction and needs blockDim.x to be a multiple of 32 (the
// launcher uses 256). The others are grid-stride loops over n outputs. Indices are 64-bit.
//
// Legend: R = rows, D = row width, F = FFN width (x holds 2F: gate half, then up half), T = tokens, H = heads,
// Dh = head dim, half = rotaryDim / 2 (rotating pairs per head).

#include "dtypes.cuh"
#include "pack.cuh"

// ---- dtypes: storage type, widening load, narrowing store (as in elementwise.cu) -----------------------------

// ---- block reductions (every thread gets the result; the order is fixed, so results are deterministic) ------
struct Sum {
  template <typename V> static __device__ __forceinline__ V apply(V a, V b) { return a + b; }
};
// max that keeps NaN, as JavaScript's Math.max does (fmaxf would drop it).
struct Max {
  static __device__ __forceinline__ float apply(float a, float b) { return (a != a || a > b) ? a : b; }
};

template <typename Op, typename V>
__device__ __forceinline__ V warp_reduce(V v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// scratch: 32 values of shared memory. Safe to call several times in a row with the same scratch.
template <typename Op, typename V>
__device__ V block_reduce(V v, V identity, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce<Op>(v);
  __syncthreads();  // an earlier call's readers are done with scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_reduce<Op>(lane < warps ? scratch[lane] : identity);
}

// ---- rms_norm -----------------------------------------------------------------------------------------------
// out = w * f32(x * inv), inv = 1 / sqrt(Σx² / D + eps). As the CPU reference (JavaScript numbers), the sum of
// squares and inv are float64 (each x² is exact there) and x * inv is rounded to f32; w * that is an f32 product.
//
// `tpr` threads per row: a power of two ≤ 32 (blockDim / tpr rows per block, the sum through shuffles within the
// group: q/k norms over heads of 64–256) or tpr = blockDim (one row per block, shuffles then one shared-memory step:
// hidden-size rows). V = elements per pack (16-byte accesses; 1 when the launcher cannot align them). A thread keeps
// its first RMS_CACHED packs of x and w in registers between the two passes (with the launcher's tpr that is every
// pack for rows up to 2 · 1024 packs) and reads the rest again. Rows are walked in block-wide steps, so every thread
// of a warp reaches every shuffle and barrier.
#define RMS_CACHED 2

// Σ v² over the threads of one group of `tpr`, in a fixed order; scratch: 32 doubles of shared memory.
static __device__ __forceinline__ double group_sum(double v, int tpr, double* scratch) {
  if (tpr <= 32) {
    for (int offset = tpr >> 1; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
  }
  return block_reduce<Sum>(v, 0.0, scratch);
}

template <class X, int V>
static __device__ __forceinline__ double sum_squares(const Pack<typename X::T, V>& p, double acc) {
#pragma unroll
  for (int e = 0; e < V; e++) {
    const double v = X::load(p.v[e]);
    acc += v * v;
  }
  return acc;
}

template <class X, class W, int V>
static __device__ __forceinline__ Pack<typename X::T, V> rms_scaled(const Pack<typename X::T, V>& x,
                                                                   const Pack<typename W::T, V>& w, double inv) {
  Pack<typename X::T, V> out;
#pragma unroll
  for (int e = 0; e < V; e++) {
    const float normed = (float)((double)X::load(x.v[e]) * inv);
    out.v[e] = X::store(__fmul_rn(W::load(w.v[e]), normed));
  }
  return out;
}

template <class X, class W, int V>
static __device__ void rms_norm_rows(typename X::T* __restrict__ out, const typename X::T* __restrict__ x,
                                     const typename W::T* __restrict__ w, u64 rows, u64 cols, double eps, int tpr) {
  typedef Pack<typename X::T, V> XP;
  typedef Pack<typename W::T, V> WP;
  __shared__ double scratch[32];
  const u64 units = cols / V;
  const int groups = blockDim.x / tpr, j = threadIdx.x % tpr;
  for (u64 base = (u64)blockIdx.x * groups; base < rows; base += (u64)gridDim.x * groups) {
    const u64 r = base + threadIdx.x / tpr;
    const bool active = r < rows;
    const typename X::T* xr = x + r * cols;
    typename X::T* outr = out + r * cols;
    XP xs[RMS_CACHED];
    WP ws[RMS_CACHED];
    double squares = 0;
#pragma unroll
    for (int i = 0; i < RMS_CACHED; i++) {
      const u64 u = j + (u64)i * tpr;
      if (active && u < units) {
        xs[i] = load_pack<typename X::T, V>(xr + u * V);
        ws[i] = load_pack<typename W::T, V>(w + u * V);
        squares = sum_squares<X, V>(xs[i], squares);
      }
    }
    for (u64 u = j + (u64)RMS_CACHED * tpr; active && u < units; u += tpr) {
      squares = sum_squares<X, V>(load_pack<typename X::T, V>(xr + u * V), squares);
    }
    squares = group_sum(squares, tpr, scratch);
    const double inv = 1.0 / sqrt(squares / (double)cols + eps);
#pragma unroll
    for (int i = 0; i < RMS_CACHED; i++) {
      const u64 u = j + (u64)i * tpr;
      if (active && u < units) store_pack<typename X::T, V>(outr + u * V, rms_scaled<X, W, V>(xs[i], ws[i], inv));
    }
    for (u64 u = j + (u64)RMS_CACHED * tpr; active && u < units; u += tpr) {
      const XP xp = load_pack<typename X::T, V>(xr + u * V);
      store_pack<typename X::T, V>(outr + u * V, rms_scaled<X, W, V>(xp, load_pack<typename W::T, V>(w + u * V), inv));
    }
  }
}

// packed: 1 for 16-byte packs of x (cols a multiple of the pack, addresses aligned), 0 for element accesses.
#define RMS_NORM_KERNEL(xname, X, wname, W)                                                                   \
  extern "C" __global__ void __launch_bounds__(1024)                                                          \
      rms_norm_##xname##_##wname(X::T* out, const X::T* x, const W::T* w, u64 rows, u64 cols, double eps,      \
                                 int tpr, int packed) {                                                       \
    if (packed) rms_norm_rows<X, W, Packed<X>::V>(out, x, w, rows, cols, eps, tpr);                           \
    else rms_norm_rows<X, W, 1>(out, x, w, rows, cols, eps, tpr);                                             \
  }
#define RMS_NORM_FOR_X(xname, X) \
  RMS_NORM_KERNEL(xname, X, f32, F32) RMS_NORM_KERNEL(xname, X, bf16, BF16) RMS_NORM_KERNEL(xname, X, f16, F16)
FOR_EACH_DTYPE(RMS_NORM_FOR_X)

// ---- softmax over the last dim ------------------------------------------------------------------------------
// Max-subtracted, in f32: e = exp(x - max), out = e / Σe. Three passes over the row (max, sum, write), so rows of
// any length fit; exp is recomputed in the last pass (the same value, so it sums to what was divided by).
#define SOFTMAX_KERNEL(name, D)                                                                               \
  extern "C" __global__ void softmax_##name(D::T* out, const D::T* x, u64 rows, u64 cols) {                  \
    __shared__ float scratch[32];                                                                             \
    const float negInf = __int_as_float(0xff800000);                                                          \
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                      \
      const D::T* xr = x + r * cols;                                                                          \
      float max = negInf;                                                                                     \
      for (u64 d = threadIdx.x; d < cols; d += blockDim.x) max = Max::apply(max, D::load(xr[d]));             \
      max = block_reduce<Max>(max, negInf, scratch);                                                          \
      float sum = 0.0f;                                                                                       \
      for (u64 d = threadIdx.x; d < cols; d += blockDim.x) sum += expf(D::load(xr[d]) - max);                \
      sum = block_reduce<Sum>(sum, 0.0f, scratch);                                                            \
      for (u64 d = threadIdx.x; d < cols; d += blockDim.x) {                                                  \
        out[r * cols + d] = D::store(__fdiv_rn(expf(D::load(xr[d]) - max), sum));                             \
      }                                                                                                       \
    }                                                                                                         \
  }
FOR_EACH_DTYPE(SOFTMAX_KERNEL)

// ---- SwiGLU on a fused projection -----------------------------------------------------------------------------
// x [R, 2F] → out [R, F]: silu(gate) * up = gate / (1 + exp(-gate)) * up.
#define SILU_MUL_KERNEL(name, D)                                                                              \
  extern "C" __global__ void silu_mul_##name(D::T* out, const D::T* x, u64 ffn, u64 n) {                     \
    GRID_STRIDE(i, n) {                                                                                       \
      const u64 gateAt = (i / ffn) * 2 * ffn + i % ffn;                                                       \
      const float gate = D::load(x[gateAt]), up = D::load(x[gateAt + ffn]);                                   \
      out[i] = D::store(__fmul_rn(__fdiv_rn(gate, 1.0f + expf(-gate)), up));                                  \
    }                                                                                                         \
  }
FOR_EACH_DTYPE(SILU_MUL_KERNEL)

// GPT-OSS: g = min(gate, limit), u = clamp(up, ±limit), out = (u + 1) · g · σ(alpha · g). NaN passes through the
// clamps (as Math.min/Math.max), hence comparisons rather than fminf/fmaxf.
#define CLAMPED_GLU_KERNEL(name, D)                                                                           \
  extern "C" __global__ void clamped_glu_##name(D::T* out, const D::T* x, float alpha, float limit, u64 ffn,  \
                                                u64 n) {                                                      \
    GRID_STRIDE(i, n) {                                                                                       \
      const u64 gateAt = (i / ffn) * 2 * ffn + i % ffn;                                                       \
      float g = D::load(x[gateAt]), u = D::load(x[gateAt + ffn]);                                             \
      g = g > limit ? limit : g;                                                                              \
      u = u < -limit ? -limit : (u > limit ? limit : u);                                                      \
      const float glu = __fdiv_rn(g, 1.0f + expf(__fmul_rn(-alpha, g)));                                      \
      out[i] = D::store(__fmul_rn(u + 1.0f, glu));                                                            \
    }                                                                                                         \
  }
FOR_EACH_DTYPE(CLAMPED_GLU_KERNEL)

// ---- rotary position embedding --------------------------------------------------------------------------------
// x [T, H, Dh]; positions i32 [T]; invFreq f32 [half]. Each head has Dh - half work units: unit u < half rotates
// pair u, (a, b) = (u, u + half) for 'half' pairing or (2u, 2u + 1) for interleaved; unit u ≥ half copies
// element u + half (the dims past rotaryDim pass through). As the CPU: angle = f32(position · invFreq[u]),
// cos and sin of it times attentionScaling rounded to f32, and the rotation formed from exact float64 products.
#define ROPE_KERNEL(name, D)                                                                                  \
  extern "C" __global__ void rope_##name(D::T* out, const D::T* x, const int* positions, const float* invFreq,\
                                         u64 heads, u64 headDim, u64 half, int interleaved, double scaling,   \
                                         u64 n) {                                                             \
    const u64 units = headDim - half;                                                                         \
    GRID_STRIDE(i, n) {                                                                                       \
      const u64 row = i / units, u = i % units; /* row = t * H + h */                                         \
      const u64 base = row * headDim;                                                                         \
      if (u >= half) {                                                                                        \
        out[base + u + half] = x[base + u + half];                                                            \
        continue;                                                                                             \
      }                                                                                                       \
      const float angle = (float)((double)positions[row / heads] * (double)invFreq[u]);                      \
      float sinA, cosA;                                                                                       \
      sincosf(angle, &sinA, &cosA);                                                                           \
      const double c = (float)((double)cosA * scaling), s = (float)((double)sinA * scaling);                  \
      const u64 a = base + (interleaved ? 2 * u : u), b = base + (interleaved ? 2 * u + 1 : u + half);        \
      const double xa = D::load(x[a]), xb = D::load(x[b]);                                                    \
      out[a] = D::store((float)(xa * c - xb * s));                                                            \
      out[b] = D::store((float)(xb * c + xa * s));                                                            \
    }                                                                                                         \
  }
FOR_EACH_DTYPE(ROPE_KERNEL)

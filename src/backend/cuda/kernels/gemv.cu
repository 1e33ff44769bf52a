// Dense GEMV for `linear` at small T (decode; launcher: gemv.ts), and its split variant for `linearSplit` (below):
// out [T, Nout] = x [T, Kin] · w [Nout, Kin]ᵀ (+ bias [Nout], stored in the dtype), f32 accumulation, rounded once —
// cublasGemmEx's contract, for bf16 and f16.
// Kernels gemv_<dtype>_<R>x<WC>: passes of R rows of x, units of WC columns (gemv.cuh); the host picks R ≥ T, WC
// and the team size S (warps splitting Kin) by the shape (gemv.ts planGemv), and launches at most one resident wave:
// team i of block b takes units i · gridDim + b, then + teams · gridDim, ..., so the first units spread over every
// block (and SM) before any block takes a second team's work.
//
// Legend: T = rows of x, Kin = input features, Nout = output features, R / WC / S as in gemv.cuh.

#include "dtypes.cuh"
#include "gemv.cuh"

template <class D, int R, int WC>
static __device__ void dense_gemv(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                  const typename D::T* bias, u64 T, u64 Nout, u64 Kin, int S) {
  __shared__ float scratch[2 * GEMV_MAX_WARPS * 32];
  GemvTeam team = gemv_team(scratch, S);
  const u64 teams = blockDim.x / 32 / S, units = (Nout + WC - 1) / WC;
  const bool vector = Kin % Vec16<D>::N == 0 && (((unsigned long long)x | (unsigned long long)w) & 15) == 0;
  for (u64 u = (threadIdx.x / 32 / S) * (u64)gridDim.x + blockIdx.x; u < units; u += teams * gridDim.x)
    gemv_unit<D, D, R, WC>(out, x, w, bias, 0, T, u * WC, Nout, Kin, vector, team);
}

// Blocks of up to GEMV_MAX_WARPS warps; MINB of them an SM at least: 3 (80 registers) where that spills nothing, else
// 2 (128). gemv.ts denseBlocksPerSM states the same rule.
#define DENSE_GEMV_KERNEL(name, D, R, WC, MINB)                                                                   \
  extern "C" __global__ void __launch_bounds__(GEMV_MAX_WARPS * 32, MINB) gemv_##name##_##R##x##WC(              \
      D::T* out, const D::T* x, const D::T* w, const D::T* bias, u64 T, u64 Nout, u64 Kin, int S) {              \
    dense_gemv<D, R, WC>(out, x, w, bias, T, Nout, Kin, S);                                                       \
  }
#define DENSE_GEMV_KERNELS(name, D)                                                                               \
  DENSE_GEMV_KERNEL(name, D, 1, 1, 3) DENSE_GEMV_KERNEL(name, D, 1, 2, 3) DENSE_GEMV_KERNEL(name, D, 1, 4, 3)    \
  DENSE_GEMV_KERNEL(name, D, 2, 1, 3) DENSE_GEMV_KERNEL(name, D, 2, 2, 3) DENSE_GEMV_KERNEL(name, D, 2, 4, 2)    \
  DENSE_GEMV_KERNEL(name, D, 4, 1, 3) DENSE_GEMV_KERNEL(name, D, 4, 2, 2) DENSE_GEMV_KERNEL(name, D, 4, 4, 2)    \
  DENSE_GEMV_KERNEL(name, D, 8, 1, 3) DENSE_GEMV_KERNEL(name, D, 8, 2, 2) DENSE_GEMV_KERNEL(name, D, 8, 4, 2)
DENSE_GEMV_KERNELS(bf16, BF16)
DENSE_GEMV_KERNELS(f16, F16)

// The same GEMV over weights stacked by rows, w [N0 + N1 + N2, Kin], each part's columns stored in its own output
// out_i [T, Ni] (`linearSplit`: attention's q, k, v in one weight pass). The units are counted per part (part i has
// ceil(Ni / WC) of them, the last maybe short), so no unit straddles two parts, whatever the Ni; a part of Ni = 0
// has none. Rows of the parts start at multiples of Kin, so they keep the 16-byte alignment of w.
template <class D, int WC>
static __device__ void split_gemv(typename D::T* out0, typename D::T* out1, typename D::T* out2, const typename D::T* x,
                                  const typename D::T* w, const typename D::T* bias, u64 T, u64 n0, u64 n1, u64 n2,
                                  u64 Kin, int S) {
  __shared__ float scratch[2 * GEMV_MAX_WARPS * 32];
  GemvTeam team = gemv_team(scratch, S);
  const u64 u0 = (n0 + WC - 1) / WC, u01 = u0 + (n1 + WC - 1) / WC, units = u01 + (n2 + WC - 1) / WC;
  const u64 teams = blockDim.x / 32 / S;
  const bool vector = Kin % Vec16<D>::N == 0 && (((unsigned long long)x | (unsigned long long)w) & 15) == 0;
  for (u64 u = (threadIdx.x / 32 / S) * (u64)gridDim.x + blockIdx.x; u < units; u += teams * gridDim.x) {
    const int part = u < u0 ? 0 : u < u01 ? 1 : 2;
    const u64 first = part == 0 ? 0 : part == 1 ? n0 : n0 + n1;  // the part's first row of w
    const u64 unit = u - (part == 0 ? 0 : part == 1 ? u0 : u01);
    const u64 N = part == 0 ? n0 : part == 1 ? n1 : n2;
    typename D::T* out = part == 0 ? out0 : part == 1 ? out1 : out2;
    gemv_unit<D, D, 1, WC>(out, x, w + first * Kin, bias != 0 ? bias + first : bias, 0, T, unit * WC, N, Kin, vector,
                           team);
  }
}

// One row a pass (the dense GEMV serves T = 1; larger T still comes out right, one row after another).
#define SPLIT_GEMV_KERNEL(name, D, WC)                                                                            \
  extern "C" __global__ void __launch_bounds__(GEMV_MAX_WARPS * 32, 3) gemv_split_##name##_1x##WC(                \
      D::T* out0, D::T* out1, D::T* out2, const D::T* x, const D::T* w, const D::T* bias, u64 T, u64 n0, u64 n1,  \
      u64 n2, u64 Kin, int S) {                                                                                   \
    split_gemv<D, WC>(out0, out1, out2, x, w, bias, T, n0, n1, n2, Kin, S);                                       \
  }
#define SPLIT_GEMV_KERNELS(name, D) SPLIT_GEMV_KERNEL(name, D, 1) SPLIT_GEMV_KERNEL(name, D, 2) SPLIT_GEMV_KERNEL(name, D, 4)
SPLIT_GEMV_KERNELS(bf16, BF16)
SPLIT_GEMV_KERNELS(f16, F16)

// Dense GEMV for `linear` at small T (decode; launcher: gemv.ts): out [T, Nout] = x [T, Kin] · w [Nout, Kin]ᵀ
// (+ bias [Nout], stored in the dtype), f32 accumulation, rounded once — cublasGemmEx's contract, for bf16 and f16.
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

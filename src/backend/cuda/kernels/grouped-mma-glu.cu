// The SwiGLU-fused kernels of grouped-mma.cuh (see there): grouped_mma_<silu|clamped>_<dtype>_<BM>, out [N, F] =
// silu(gate) · up, or GPT-OSS's clamped GLU, of the gate|up GEMM (w[e] = F gate rows then F up rows, Nout = 2F).
// Launcher: moe.ts groupedSwiGluInto.

#include "grouped-mma.cuh"

#define GROUPED_GLU_KERNELS(name, D)                          \
  GROUPED_MMA_KERNEL(silu_##name, D, 128, 3, GLU_SILU)        \
  GROUPED_MMA_KERNEL(silu_##name, D, 64, 4, GLU_SILU)         \
  GROUPED_MMA_KERNEL(clamped_##name, D, 128, 3, GLU_CLAMPED)  \
  GROUPED_MMA_KERNEL(clamped_##name, D, 64, 4, GLU_CLAMPED)
GROUPED_GLU_KERNELS(bf16, BF16)
GROUPED_GLU_KERNELS(f16, F16)

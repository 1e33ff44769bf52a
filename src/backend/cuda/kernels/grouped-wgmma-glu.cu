// The SwiGLU-fused kernels of grouped-wgmma.cuh (see there; Hopper sm_90a only): grouped_wgmma_<silu|clamped>_
// <dtype>_<BN>, out [N, F] = silu(gate) · up, or GPT-OSS's clamped GLU, of the gate|up GEMM (w[e] = F gate rows then
// F up rows, Nout = 2F); a BN-row weight tile makes BN / 2 output columns. Launcher: moe.ts groupedSwiGluInto.

#include "grouped-wgmma.cuh"

#define GROUPED_WGMMA_GLU_KERNELS(name, D)                        \
  GROUPED_WGMMA_KERNEL(silu_##name, D, 256, 4, 1, GLU_SILU)       \
  GROUPED_WGMMA_KERNEL(silu_##name, D, 128, 3, 2, GLU_SILU)       \
  GROUPED_WGMMA_KERNEL(clamped_##name, D, 256, 4, 1, GLU_CLAMPED) \
  GROUPED_WGMMA_KERNEL(clamped_##name, D, 128, 3, 2, GLU_CLAMPED)
GROUPED_WGMMA_GLU_KERNELS(bf16, BF16)
GROUPED_WGMMA_GLU_KERNELS(f16, F16)

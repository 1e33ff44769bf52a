// The linear kernels of grouped-mma.cuh (see there): grouped_mma_<dtype>_<BM>, out [N, Nout] = x · w[e]ᵀ (+ bias).
// Rows of 128 (3-stage ring) or 64 (4-stage ring); launcher: moe.ts groupedLinearInto.

#include "grouped-mma.cuh"

GROUPED_MMA_KERNEL(bf16, BF16, 128, 3, GLU_NONE)
GROUPED_MMA_KERNEL(bf16, BF16, 64, 4, GLU_NONE)
GROUPED_MMA_KERNEL(f16, F16, 128, 3, GLU_NONE)
GROUPED_MMA_KERNEL(f16, F16, 64, 4, GLU_NONE)

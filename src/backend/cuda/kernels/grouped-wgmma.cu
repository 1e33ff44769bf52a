// The linear kernels of grouped-wgmma.cuh (see there; Hopper sm_90a only): grouped_wgmma_<dtype>_<BN>, out [N, Nout]
// = x · w[e]ᵀ (+ bias). Tiles of 128 rows × 256 columns (4-stage ring, 193 KiB of shared memory: one block an SM;
// the one groupedLinear picks) or 128 × 128 (3 stages, 97 KiB: two blocks an SM; measured within a few % of it,
// kept for the benchmark). Launcher: moe.ts groupedLinearInto.

#include "grouped-wgmma.cuh"

GROUPED_WGMMA_KERNEL(bf16, BF16, 256, 4, 1, GLU_NONE)
GROUPED_WGMMA_KERNEL(bf16, BF16, 128, 3, 2, GLU_NONE)
GROUPED_WGMMA_KERNEL(f16, F16, 256, 4, 1, GLU_NONE)
GROUPED_WGMMA_KERNEL(f16, F16, 128, 3, 2, GLU_NONE)

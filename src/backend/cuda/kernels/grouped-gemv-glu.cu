// The experts' grouped GEMV with the SwiGLU fused (decode; launcher: moe.ts groupedGemvGluInto): out [N, F] =
// glu(gate, up) of the gate|up projection of x [N, Kin] by each row's expert, w[e] = gateUp [2F, Kin] (F gate rows,
// then F up rows, as siluMul splits its input), bias f32 [E, 2F] or null. Kernels
// grouped_gemv_<silu|clamped>_<dtype>_8x<WC>, arguments as grouped.cu's grouped_gemv plus alpha and limit (the
// clamped GLU's). The work is grouped.cu's (hit experts listed per block, units spread over teams of warps:
// grouped-gemv.cuh; dot products streamed by gemv.cuh), but a unit takes the WC / 2 gate rows j .. and the up rows
// F + j .. of the same output columns, so the weights are read once, act(gate) · up is formed in f32 from the unrounded
// sums (the two ops round gate and up to the dtype first) and the [N, 2F] projection is never written.
//
// Legend: N = routed rows, E = experts, Kin = input features, F = FFN size, Nout = 2F weight rows an expert, R / WC / S
// as in gemv.cuh, H = WC / 2 output columns a unit.

// grouped-mma.cuh brings dtypes.cuh and glu(), the activation every fused kernel applies (one formula, one place).
#include "grouped-mma.cuh"
#include "gemv.cuh"
#include "grouped-gemv.cuh"

// One unit: out[row, j0 + c] for c < H and j0 + c < F, rows [rowBegin, rowEnd) in passes of R; w one expert's
// [2F, Kin], bias its f32 [2F] or null. The unit's WC weight rows are its H gate rows, then the H up rows of the same
// columns, so after gemv_team_dot the lane holding gate sum (r, c) finds up sum (r, c + H) H lane groups above it.
template <class D, int R, int WC, int GLU>
static __device__ void gemv_glu_unit(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                     const float* bias, u64 rowBegin, u64 rowEnd, u64 j0, u64 F, u64 Kin, bool vector,
                                     GemvTeam& team, float alpha, float limit) {
  constexpr int H = WC / 2;
  const int nc = F - j0 < H ? (int)(F - j0) : H;
  const typename D::T* ws[WC];
#pragma unroll
  for (int c = 0; c < H; c++) {
    const u64 j = j0 + (c < nc ? c : nc - 1);  // past the last column: a real row again (loads in bounds, never stored)
    ws[c] = w + j * Kin;
    ws[H + c] = w + (F + j) * Kin;
  }
  const int lane = threadIdx.x % 32;
  const int slot = gemv_slot<R, WC>(lane), r = slot / WC, c = slot % WC;
  const bool writer = team.part == 0 && gemv_writes<R, WC>(lane) && c < nc;  // gate lanes only: nc ≤ H
  const float gateBias = (writer && bias != 0) ? bias[j0 + c] : 0.0f;
  const float upBias = (writer && bias != 0) ? bias[F + j0 + c] : 0.0f;
  const unsigned upLanes = 32 / (R * WC) * H;  // a (row, column) sum is held by 32 / (R · WC) consecutive lanes
  for (u64 row0 = rowBegin; row0 < rowEnd; row0 += R) {
    const int nr = rowEnd - row0 < R ? (int)(rowEnd - row0) : R;
    const float total = gemv_team_dot<D, R, WC>(x + row0 * Kin, ws, Kin, nr, vector, team);
    const float up = __shfl_down_sync(FULL_MASK, total, upLanes);
    if (writer && r < nr) out[(row0 + r) * F + j0 + c] = D::store(glu(GLU, total + gateBias, up + upBias, alpha, limit));
  }
}

template <class D, int WC, int GLU>
static __device__ void grouped_gemv_glu(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                        const float* bias, const int* offsets, int E, u64 N, u64 Nout, u64 Kin, int S,
                                        float alpha, float limit) {
  const u64 F = Nout / 2;
  const bool vector = Kin % Vec16<D>::N == 0 && (((unsigned long long)x | (unsigned long long)w) & 15) == 0;
  for_each_expert_unit(offsets, E, N, (F + WC / 2 - 1) / (WC / 2), S,
                       [&](u64 e, u64 rowBegin, u64 rowEnd, u64 group, GemvTeam& team) {
                         gemv_glu_unit<D, 8, WC, GLU>(out, x, w + e * Nout * Kin, bias != 0 ? bias + e * Nout : 0,
                                                      rowBegin, rowEnd, group * (WC / 2), F, Kin, vector, team, alpha,
                                                      limit);
                       });
}

// Blocks of GEMV_MAX_WARPS warps, 2 an SM at least (moe.ts plans with the same).
#define GROUPED_GEMV_GLU_KERNEL(name, D, WC, GLU)                                                                 \
  extern "C" __global__ void __launch_bounds__(GEMV_MAX_WARPS * 32, 2) grouped_gemv_##name##_8x##WC(              \
      D::T* out, const D::T* x, const D::T* w, const float* bias, const int* offsets, int E, u64 N, u64 Nout,    \
      u64 Kin, int S, float alpha, float limit) {                                                                 \
    grouped_gemv_glu<D, WC, GLU>(out, x, w, bias, offsets, E, N, Nout, Kin, S, alpha, limit);                     \
  }
#define GROUPED_GEMV_GLU_KERNELS(name, D)                                                                         \
  GROUPED_GEMV_GLU_KERNEL(silu_##name, D, 2, GLU_SILU) GROUPED_GEMV_GLU_KERNEL(silu_##name, D, 4, GLU_SILU)        \
  GROUPED_GEMV_GLU_KERNEL(clamped_##name, D, 2, GLU_CLAMPED) GROUPED_GEMV_GLU_KERNEL(clamped_##name, D, 4, GLU_CLAMPED)
GROUPED_GEMV_GLU_KERNELS(f32, F32)
GROUPED_GEMV_GLU_KERNELS(bf16, BF16)
GROUPED_GEMV_GLU_KERNELS(f16, F16)

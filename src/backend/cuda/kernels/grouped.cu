// Grouped linear for the MoE experts, one launch for all experts: rows [offsets[e], offsets[e+1]) of x [N, Kin]
// times w[e] [Nout, Kin]ᵀ (+ bias[e] [Nout], f32) → out [N, Nout], f32 accumulation, rounded once to the dtype.
// Kernels grouped_linear_<dtype> (x, w and out share it) for many rows, grouped_gemv_<dtype>_8x<WC> (below) for few
// rows (decode); moe.ts picks one by N and E. Compiled by NVRTC; launch.ts inlines the headers.
//
// grouped_linear: each block computes one TILE_M × TILE_N output tile. The host knows only N and E, so the grid has
// (ceil(N / TILE_M) + E) row tiles × ceil(Nout / TILE_N) column tiles, enough for any split of N rows among E experts;
// a block finds its expert and row tile by scanning the tile counts of the offsets on the device, and blocks past
// the last tile return at once. Plain shared-memory tiling: correctness first, speed later.
//
// Legend: N = routed rows, E = experts, Kin = input features, Nout = output features.

#include "dtypes.cuh"
#include "gemv.cuh"
#include "grouped-gemv.cuh"
#define TILE_M 64
#define TILE_N 64
#define TILE_K 16
#define THREADS 256  // 16 × 16 threads, each 4 × 4 outputs (rows ty + 16i, columns tx + 16j)

// Where a block's work is: its expert (-1: none), first row, and the end of the expert's rows.
struct TileSpot {
  int expert;
  u64 row0;
  u64 rowEnd;
};

// Run by one warp: the expert whose row tiles include linear row tile `rowTile` (experts in order, each with
// ceil(rows / TILE_M) tiles). Offsets are clamped to [0, N] and made non-decreasing, so bad offsets cannot reach
// outside x or out.
static __device__ void locate_tile(TileSpot* spot, const int* offsets, int E, u64 N, unsigned rowTile) {
  const int lane = threadIdx.x;
  unsigned carry = 0;
  for (int base = 0; base < E; base += 32) {
    const int e = base + lane;
    u64 begin = 0, end = 0;
    if (e < E) {
      const int lo = offsets[e], hi = offsets[e + 1];
      begin = lo < 0 ? 0 : ((u64)lo > N ? N : (u64)lo);
      end = hi < 0 ? 0 : ((u64)hi > N ? N : (u64)hi);
      if (end < begin) end = begin;
    }
    const unsigned tiles = (unsigned)((end - begin + TILE_M - 1) / TILE_M);
    unsigned inclusive = tiles;
    for (int d = 1; d < 32; d <<= 1) {
      const unsigned up = __shfl_up_sync(FULL_MASK, inclusive, d);
      if (lane >= d) inclusive += up;
    }
    const unsigned first = carry + inclusive - tiles;
    const bool hit = rowTile >= first && rowTile - first < tiles;
    if (hit) {
      spot->expert = e;
      spot->row0 = begin + (u64)(rowTile - first) * TILE_M;
      spot->rowEnd = end;
    }
    if (__ballot_sync(FULL_MASK, hit)) return;
    carry += __shfl_sync(FULL_MASK, inclusive, 31);
  }
  if (lane == 0) spot->expert = -1;
}

template <class D>
static __device__ void grouped_linear(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                      const float* bias, const int* offsets, int E, u64 N, u64 Nout, u64 Kin,
                                      int colTiles) {
  __shared__ float xTile[TILE_K][TILE_M + 1];  // xTile[k][m] = x[row0 + m, k0 + k]
  __shared__ float wTile[TILE_K][TILE_N + 1];  // wTile[k][n] = w[e, col0 + n, k0 + k]
  __shared__ TileSpot spot;
  if (threadIdx.x < 32) locate_tile(&spot, offsets, E, N, blockIdx.x / colTiles);
  __syncthreads();
  const int e = spot.expert;
  if (e < 0) return;
  const u64 row0 = spot.row0, rowEnd = spot.rowEnd;
  const u64 col0 = (u64)(blockIdx.x % colTiles) * TILE_N;
  const typename D::T* we = w + (u64)e * Nout * Kin;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  float acc[4][4];
  for (int j = 0; j < 4; j++) {
    const u64 col = col0 + tx + 16 * j;
    const float b = (bias != 0 && col < Nout) ? bias[(u64)e * Nout + col] : 0.0f;
    for (int i = 0; i < 4; i++) acc[i][j] = b;
  }
  for (u64 k0 = 0; k0 < Kin; k0 += TILE_K) {
    for (int q = 0; q < TILE_M * TILE_K / THREADS; q++) {
      const int i = threadIdx.x + THREADS * q;
      const int m = i / TILE_K, k = i % TILE_K;
      const u64 row = row0 + m, col = col0 + m, kk = k0 + k;
      xTile[k][m] = (row < rowEnd && kk < Kin) ? D::load(x[row * Kin + kk]) : 0.0f;
      wTile[k][m] = (col < Nout && kk < Kin) ? D::load(we[col * Kin + kk]) : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < TILE_K; k++) {
      float a[4], b[4];
      for (int i = 0; i < 4; i++) a[i] = xTile[k][ty + 16 * i];
      for (int j = 0; j < 4; j++) b[j] = wTile[k][tx + 16 * j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; i++) {
    const u64 row = row0 + ty + 16 * i;
    if (row >= rowEnd) continue;
    for (int j = 0; j < 4; j++) {
      const u64 col = col0 + tx + 16 * j;
      if (col < Nout) out[row * Nout + col] = D::store(acc[i][j]);
    }
  }
}

#define GROUPED_LINEAR_KERNEL(name, D)                                                                            \
  extern "C" __global__ void __launch_bounds__(THREADS) grouped_linear_##name(                                    \
      D::T* out, const D::T* x, const D::T* w, const float* bias, const int* offsets, int E, u64 N, u64 Nout,    \
      u64 Kin, int colTiles) {                                                                                    \
    grouped_linear<D>(out, x, w, bias, offsets, E, N, Nout, Kin, colTiles);                                       \
  }
GROUPED_LINEAR_KERNEL(f32, F32)
GROUPED_LINEAR_KERNEL(bf16, BF16)
GROUPED_LINEAR_KERNEL(f16, F16)

// ---- Small-N path: a GEMV per expert (decode) ----------------------------------------------------------------
// Kernels grouped_gemv_<dtype>_8x<WC>, same arguments as above except the last: S, the warps of a team (gemv.cuh).
// Memory-bound: each weight byte of a hit expert is read once per pass of 8 of its rows, in 16-byte loads, by the
// shared GEMV core (gemv.cuh); the units (hit expert, WC columns) are spread over teams of warps by grouped-gemv.cuh,
// in a grid of at most one resident wave planned by the host (gemv.ts planGemv).
template <class D, int WC>
static __device__ void grouped_gemv(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                    const float* bias, const int* offsets, int E, u64 N, u64 Nout, u64 Kin, int S) {
  const bool vector = Kin % Vec16<D>::N == 0 && (((unsigned long long)x | (unsigned long long)w) & 15) == 0;
  for_each_expert_unit(offsets, E, N, (Nout + WC - 1) / WC, S, [&](u64 e, u64 rowBegin, u64 rowEnd, u64 group, GemvTeam& team) {
    gemv_unit<D, F32, 8, WC>(out, x, w + e * Nout * Kin, bias != 0 ? bias + e * Nout : 0, rowBegin, rowEnd, group * WC,
                             Nout, Kin, vector, team);
  });
}

// Blocks of GEMV_MAX_WARPS warps; MINB blocks an SM at least (the register budget; planGemv assumes the same).
#define GROUPED_GEMV_KERNEL(name, D, WC, MINB)                                                                    \
  extern "C" __global__ void __launch_bounds__(GEMV_MAX_WARPS * 32, MINB) grouped_gemv_##name##_8x##WC(           \
      D::T* out, const D::T* x, const D::T* w, const float* bias, const int* offsets, int E, u64 N, u64 Nout,    \
      u64 Kin, int S) {                                                                                           \
    grouped_gemv<D, WC>(out, x, w, bias, offsets, E, N, Nout, Kin, S);                                            \
  }
#define GROUPED_GEMV_KERNELS(name, D) \
  GROUPED_GEMV_KERNEL(name, D, 1, 2) GROUPED_GEMV_KERNEL(name, D, 2, 2) GROUPED_GEMV_KERNEL(name, D, 4, 2)
GROUPED_GEMV_KERNELS(f32, F32)
GROUPED_GEMV_KERNELS(bf16, BF16)
GROUPED_GEMV_KERNELS(f16, F16)

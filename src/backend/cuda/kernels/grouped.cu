// Grouped linear for the MoE experts, one launch for all experts: rows [offsets[e], offsets[e+1]) of x [N, Kin]
// times w[e] [Nout, Kin]ᵀ (+ bias[e] [Nout], f32) → out [N, Nout], f32 accumulation, rounded once to the dtype.
// Kernels grouped_linear_<dtype> (x, w and out share it) for many rows, grouped_gemv_<dtype> (below) for few rows
// (decode); moe.ts picks one by N and E. Compiled by NVRTC; dtypes.cuh is inlined by launch.ts.
//
// grouped_linear: each block computes one TILE_M × TILE_N output tile. The host knows only N and E, so the grid has
// (ceil(N / TILE_M) + E) row tiles × ceil(Nout / TILE_N) column tiles, enough for any split of N rows among E experts;
// a block finds its expert and row tile by scanning the tile counts of the offsets on the device, and blocks past
// the last tile return at once. Plain shared-memory tiling: correctness first, speed later.
//
// Legend: N = routed rows, E = experts, Kin = input features, Nout = output features.

#include "dtypes.cuh"
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
// Kernels grouped_gemv_<dtype>, same arguments as above except the last: colStrips. Memory-bound: each weight byte
// of a hit expert is read once per pass of GEMV_ROWS rows, in 16-byte loads. A block owns GEMV_COLS columns of one
// non-empty expert: block b serves the (b / colStrips)-th non-empty expert (found by a ballot scan of the offsets, so
// the host launches min(E, N) expert slots without knowing which experts are hit; slots past the last non-empty
// expert return at once). Each warp owns GEMV_WARP_COLS columns; lanes split Kin (VEC elements each per step), every
// lane keeps GEMV_ROWS × GEMV_WARP_COLS f32 partial sums, reduced across the warp at the end of each row pass by a
// transposing butterfly (31 shuffles leave lane l the total of sum l). Vector loads only when Kin % VEC == 0 and x, w
// are 16-byte aligned (every row start then is); otherwise the same loop with one element per lane per step.
#define GEMV_ROWS 8
#define GEMV_WARP_COLS 4   // GEMV_ROWS * GEMV_WARP_COLS must be 32: one reduced sum per lane
#define GEMV_WARPS 8
#define GEMV_COLS (GEMV_WARPS * GEMV_WARP_COLS)

// 16 bytes of storage (one vector load), widened to f32: 4 f32, or 8 bf16 / f16.
struct alignas(16) Raw16 {
  unsigned int x, y, z, w;
};
// One 16-byte global load (p 16-byte aligned); PTX, so it never splits into narrower loads. x and w are only read.
static __device__ __forceinline__ Raw16 load16(const void* p) {
  Raw16 r;
  asm("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}
template <class D> struct Vec16;
template <> struct Vec16<F32> {
  enum { N = 4 };
  static __device__ __forceinline__ void widen(const Raw16& v, float* f) {
    f[0] = __uint_as_float(v.x); f[1] = __uint_as_float(v.y); f[2] = __uint_as_float(v.z); f[3] = __uint_as_float(v.w);
  }
};
template <> struct Vec16<BF16> {
  enum { N = 8 };
  static __device__ __forceinline__ void widen(const Raw16& v, float* f) {
    const unsigned int u[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; i++) {
      f[2 * i] = __uint_as_float(u[i] << 16);
      f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
  }
};
template <> struct Vec16<F16> {
  enum { N = 8 };
  static __device__ __forceinline__ void widen(const Raw16& v, float* f) {
    const unsigned int u[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; i++) {
      f[2 * i] = F16::load((unsigned short)(u[i] & 0xffffu));
      f[2 * i + 1] = F16::load((unsigned short)(u[i] >> 16));
    }
  }
};

// Clamped rows [begin, end) of expert e (empty for e ≥ E): offsets clamped to [0, N] and made non-decreasing, as in
// locate_tile, so bad offsets cannot reach outside x or out.
static __device__ __forceinline__ void expert_rows(u64* begin, u64* end, const int* offsets, int E, u64 N, int e) {
  *begin = *end = 0;
  if (e >= E) return;
  const int lo = offsets[e], hi = offsets[e + 1];
  *begin = lo < 0 ? 0 : ((u64)lo > N ? N : (u64)lo);
  *end = hi < 0 ? 0 : ((u64)hi > N ? N : (u64)hi);
  if (*end < *begin) *end = *begin;
}

// Run by one warp: the expert of non-empty expert slot `slot` (experts in order) and its rows; expert -1 when fewer
// experts have rows. Offsets are read 256 experts at a time, all loads issued before any is used (one round trip to
// L2 per 256 experts, paid once per block).
#define SCAN_CHUNKS 8
static __device__ void locate_expert(TileSpot* spot, const int* offsets, int E, u64 N, unsigned slot) {
  const int lane = threadIdx.x % 32;
  unsigned carry = 0;
  for (int base = 0; base < E; base += 32 * SCAN_CHUNKS) {
    u64 begin[SCAN_CHUNKS], end[SCAN_CHUNKS];
    for (int j = 0; j < SCAN_CHUNKS; j++) expert_rows(&begin[j], &end[j], offsets, E, N, base + 32 * j + lane);
    for (int j = 0; j < SCAN_CHUNKS; j++) {
      const unsigned filled = __ballot_sync(FULL_MASK, end[j] > begin[j]);
      if (end[j] > begin[j] && carry + __popc(filled & ((1u << lane) - 1u)) == slot) {
        spot->expert = base + 32 * j + lane;
        spot->row0 = begin[j];
        spot->rowEnd = end[j];
      }
      if (slot < carry + __popc(filled)) return;
      carry += __popc(filled);
    }
  }
  if (lane == 0) spot->expert = -1;
}

// The warp's weight vectors at input feature k, 16 bytes per column. Columns past the last (c ≥ nc) read the last
// column again: unconditional loads stay single 16-byte loads, and those sums are never stored.
template <class D>
static __device__ __forceinline__ void gemv_load(Raw16 (&raw)[GEMV_WARP_COLS], const typename D::T* ws, u64 k, u64 Kin,
                                                 int nc) {
  for (int c = 0; c < GEMV_WARP_COLS; c++) {
    const int column = c < nc ? c : nc - 1;
    raw[c] = load16(ws + (u64)column * Kin + k);
  }
}

// acc[r][c] += x[r, k .. k+VEC) · w[c, k .. k+VEC) for the pass's nr ≤ GEMV_ROWS rows (weights already loaded).
template <class D>
static __device__ __forceinline__ void gemv_vector_step(float (&acc)[GEMV_ROWS][GEMV_WARP_COLS],
                                                        const Raw16 (&raw)[GEMV_WARP_COLS], const typename D::T* xs,
                                                        u64 k, u64 Kin, int nr) {
  const int V = Vec16<D>::N;
  float wv[GEMV_WARP_COLS][V];
  for (int c = 0; c < GEMV_WARP_COLS; c++) Vec16<D>::widen(raw[c], wv[c]);
  for (int r = 0; r < GEMV_ROWS; r++) {
    if (r >= nr) break;
    float xv[V];
    Vec16<D>::widen(load16(xs + (u64)r * Kin + k), xv);
    for (int c = 0; c < GEMV_WARP_COLS; c++)
      for (int v = 0; v < V; v++) acc[r][c] = fmaf(xv[v], wv[c][v], acc[r][c]);
  }
}

// The same for one input feature k with scalar loads (any Kin, any alignment).
template <class D>
static __device__ __forceinline__ void gemv_scalar_step(float (&acc)[GEMV_ROWS][GEMV_WARP_COLS],
                                                        const typename D::T* xs, const typename D::T* ws, u64 k,
                                                        u64 Kin, int nr, int nc) {
  float wv[GEMV_WARP_COLS];
  for (int c = 0; c < GEMV_WARP_COLS; c++) wv[c] = c < nc ? D::load(ws[(u64)c * Kin + k]) : 0.0f;
  for (int r = 0; r < GEMV_ROWS; r++) {
    if (r >= nr) break;
    const float xv = D::load(xs[(u64)r * Kin + k]);
    for (int c = 0; c < GEMV_WARP_COLS; c++) acc[r][c] = fmaf(xv, wv[c], acc[r][c]);
  }
}

// One row pass over all of Kin. Vector path: two steps' weight loads issued before either is used, so each warp keeps
// 2 × GEMV_WARP_COLS × 512 bytes in flight.
template <class D>
static __device__ __forceinline__ void gemv_pass(float (&acc)[GEMV_ROWS][GEMV_WARP_COLS], const typename D::T* xs,
                                                 const typename D::T* ws, u64 Kin, int nr, int nc, bool vector) {
  const int lane = threadIdx.x % 32;
  if (vector) {
    const u64 stride = 32 * Vec16<D>::N;
    u64 k = (u64)lane * Vec16<D>::N;
    for (; k + stride < Kin; k += 2 * stride) {
      Raw16 now[GEMV_WARP_COLS], next[GEMV_WARP_COLS];
      gemv_load<D>(now, ws, k, Kin, nc);
      gemv_load<D>(next, ws, k + stride, Kin, nc);
      gemv_vector_step<D>(acc, now, xs, k, Kin, nr);
      gemv_vector_step<D>(acc, next, xs, k + stride, Kin, nr);
    }
    if (k < Kin) {
      Raw16 now[GEMV_WARP_COLS];
      gemv_load<D>(now, ws, k, Kin, nc);
      gemv_vector_step<D>(acc, now, xs, k, Kin, nr);
    }
  } else {
    for (u64 k = lane; k < Kin; k += 32) gemv_scalar_step<D>(acc, xs, ws, k, Kin, nr, nc);
  }
}

// Sums acc over the warp; lane l returns the total of acc[l / GEMV_WARP_COLS][l % GEMV_WARP_COLS].
static __device__ __forceinline__ float warp_transpose_sum(float (&acc)[GEMV_ROWS][GEMV_WARP_COLS]) {
  float v[32];
  for (int i = 0; i < 32; i++) v[i] = acc[i / GEMV_WARP_COLS][i % GEMV_WARP_COLS];
  const int lane = threadIdx.x % 32;
  for (int width = 16; width >= 1; width >>= 1) {
    const bool upper = (lane & width) != 0;
    for (int i = 0; i < width; i++) {
      const float send = upper ? v[i] : v[i + width];
      const float keep = upper ? v[i + width] : v[i];
      v[i] = keep + __shfl_xor_sync(FULL_MASK, send, width);
    }
  }
  return v[0];
}

template <class D>
static __device__ void grouped_gemv(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                    const float* bias, const int* offsets, int E, u64 N, u64 Nout, u64 Kin,
                                    int colStrips) {
  typedef Vec16<D> V16;
  __shared__ TileSpot spot;
  if (threadIdx.x < 32) locate_expert(&spot, offsets, E, N, blockIdx.x / colStrips);
  __syncthreads();
  const int e = spot.expert;
  if (e < 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const u64 col0 = (u64)(blockIdx.x % colStrips) * GEMV_COLS + (u64)warp * GEMV_WARP_COLS;
  if (col0 >= Nout) return;  // no __syncthreads below
  const int nc = (int)(Nout - col0 < GEMV_WARP_COLS ? Nout - col0 : GEMV_WARP_COLS);
  const typename D::T* ws = w + ((u64)e * Nout + col0) * Kin;
  const bool vector = Kin % V16::N == 0 && (((unsigned long long)x | (unsigned long long)w) & 15) == 0;
  const int myRow = lane / GEMV_WARP_COLS, myCol = lane % GEMV_WARP_COLS;
  const float b = (bias != 0 && myCol < nc) ? bias[(u64)e * Nout + col0 + myCol] : 0.0f;

  for (u64 row0 = spot.row0; row0 < spot.rowEnd; row0 += GEMV_ROWS) {
    const int nr = (int)(spot.rowEnd - row0 < GEMV_ROWS ? spot.rowEnd - row0 : GEMV_ROWS);
    const typename D::T* xs = x + row0 * Kin;
    float acc[GEMV_ROWS][GEMV_WARP_COLS];
    for (int r = 0; r < GEMV_ROWS; r++)
      for (int c = 0; c < GEMV_WARP_COLS; c++) acc[r][c] = 0.0f;
    gemv_pass<D>(acc, xs, ws, Kin, nr, nc, vector);
    const float sum = warp_transpose_sum(acc);
    if (myRow < nr && myCol < nc) out[(row0 + myRow) * Nout + col0 + myCol] = D::store(sum + b);
  }
}

#define GROUPED_GEMV_KERNEL(name, D)                                                                              \
  extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32, 2) grouped_gemv_##name(                          \
      D::T* out, const D::T* x, const D::T* w, const float* bias, const int* offsets, int E, u64 N, u64 Nout,    \
      u64 Kin, int colStrips) {                                                                                   \
    grouped_gemv<D>(out, x, w, bias, offsets, E, N, Nout, Kin, colStrips);                                        \
  }
GROUPED_GEMV_KERNEL(f32, F32)
GROUPED_GEMV_KERNEL(bf16, BF16)
GROUPED_GEMV_KERNEL(f16, F16)

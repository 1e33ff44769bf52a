// The memory-bound GEMV core for decode: dot products of a few rows of x with weight rows streamed once from HBM in
// 16-byte loads, f32 accumulation. One implementation, shared by the dense GEMV (gemv.cu: `linear` at small T) and
// the experts' grouped GEMV (grouped.cu); any kernel that streams weight rows once can use it (include dtypes.cuh
// first; launch.ts inlines both before NVRTC compiles).
//
// The work of a launch is cut into units: WC weight rows (output columns) × all of Kin, for passes of up to R rows
// of x. A unit is done by a team of S warps of one block (S = 1: one warp): the team's 32·S lanes walk Kin in
// 16-byte vectors (lane l of the team's warp p takes vectors p·32 + l, then + 32·S, ...), each lane issuing
// GEMV_LOADS weight loads (WC columns × GEMV_LOADS / WC steps) before using any, so every warp keeps GEMV_LOADS ×
// 512 bytes in flight. The sums are then reduced across the warp by a transposing butterfly and, for S > 1, across
// the team's warps through shared memory (one named barrier per unit). Scalar loads (one element per lane and step)
// when Kin is not a multiple of the vector or a row start is not 16-byte aligned.
//
// What a caller uses (a kernel loops over its units; every warp of a team takes the same units in the same order):
//   GemvTeam team = gemv_team(scratch, S)                 where the warp sits: teams of S consecutive warps, scratch
//                                                         the block's __shared__ float[2 * GEMV_MAX_WARPS * 32]
//   gemv_team_dot<D, R, WC>(x, w, Kin, nr, vector, team)  a unit's totals for rows < nr of x and weight rows w[0..WC),
//                                                         one (row, column) per lane of the team's first warp
//   gemv_slot<R, WC>(lane) / gemv_writes<R, WC>(lane)     which (row, column) a lane holds; whether it stores it
//   gemv_unit<D, BiasD, R, WC>(out, x, w, bias, ...)      a whole unit of out = x · wᵀ + bias (the GEMV kernels' loop
//                                                         body: passes of R rows, bias, rounding, stores)
//
// Legend: R = x rows per pass, WC = weight rows (columns) per unit, S = warps per team, V = elements per 16 bytes,
// Kin = input features, nr = rows of x in this pass (≤ R), nc = real columns in this unit (≤ WC).
#pragma once

#define GEMV_LOADS 8       // 16-byte weight loads per lane in flight (WC × steps of one round)
#define GEMV_MAX_WARPS 8   // warps a block may have (shared scratch of gemv_team_dot)

// 16 bytes of storage: 4 f32, or 8 bf16 / f16.
struct alignas(16) Raw16 {
  unsigned int x, y, z, w;
};
// One 16-byte load of data read many times (x: stays in L1). p must be 16-byte aligned and only read by the kernel.
static __device__ __forceinline__ Raw16 load16(const void* p) {
  Raw16 r;
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}
// One 16-byte load of data read once (weights): not kept in L1, so x stays there.
static __device__ __forceinline__ Raw16 load16_stream(const void* p) {
  Raw16 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}

// Waits until `threads` threads (whole warps) of the block have reached barrier `id` (1..15; 0 is __syncthreads).
static __device__ __forceinline__ void named_barrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// A 16-byte vector widened to f32: N = 4 f32 or 8 bf16 / f16.
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
#pragma unroll
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
#pragma unroll
    for (int i = 0; i < 4; i++) {
      f[2 * i] = F16::load((unsigned short)(u[i] & 0xffffu));
      f[2 * i + 1] = F16::load((unsigned short)(u[i] >> 16));
    }
  }
};

// Where a warp sits: its team's shared scratch (2 × S × 32 floats, alternating between consecutive units), the named
// barrier of the team (1 + team index: 0 is __syncthreads), S, and the warp's part p < S.
struct GemvTeam {
  float* scratch;
  int barrier;
  int warps;
  int part;
  int parity;  // flips after each unit (gemv_team_dot)
};

// The team of the calling warp when a block is cut into teams of S consecutive warps; scratch: the block's
// 2 × GEMV_MAX_WARPS × 32 floats.
static __device__ __forceinline__ GemvTeam gemv_team(float* scratch, int S) {
  const int warp = threadIdx.x / 32;
  GemvTeam t;
  t.scratch = scratch + (warp / S) * S * 64;
  t.barrier = 1 + warp / S;
  t.warps = S;
  t.part = warp % S;
  t.parity = 0;
  return t;
}

// acc[r][c] += x[r, k .. k+V) · w[c][k .. k+V) for r < nr: one step, weights already loaded.
template <class D, int R, int WC>
static __device__ __forceinline__ void gemv_vector_step(float (&acc)[R][WC], const Raw16 (&raw)[WC],
                                                        const typename D::T* x, u64 k, u64 Kin, int nr) {
  const int V = Vec16<D>::N;
  float wv[WC][V];
#pragma unroll
  for (int c = 0; c < WC; c++) Vec16<D>::widen(raw[c], wv[c]);
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (r >= nr) break;
    float xv[V];
    Vec16<D>::widen(load16(x + (u64)r * Kin + k), xv);
#pragma unroll
    for (int c = 0; c < WC; c++)
#pragma unroll
      for (int v = 0; v < V; v++) acc[r][c] = fmaf(xv[v], wv[c][v], acc[r][c]);
  }
}

// This lane's share of the dot products, 16-byte vectors: elements first, first + stride, ... (first and stride
// multiples of V). GEMV_LOADS / WC steps a round, all their weight loads issued before any is used; steps past Kin
// load nothing and add nothing.
template <class D, int R, int WC>
static __device__ __forceinline__ void gemv_dot_vector(float (&acc)[R][WC], const typename D::T* x,
                                                       const typename D::T* const (&w)[WC], u64 Kin, int nr, u64 first,
                                                       u64 stride) {
  const int U = GEMV_LOADS / WC;
  for (u64 k = first; k < Kin; k += U * stride) {
    Raw16 raw[U][WC];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const u64 ku = k + u * stride;
#pragma unroll
      for (int c = 0; c < WC; c++) {
        if (ku < Kin) raw[u][c] = load16_stream(w[c] + ku);
        else raw[u][c] = Raw16{0u, 0u, 0u, 0u};
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const u64 ku = k + u * stride;
      if (ku < Kin) gemv_vector_step<D, R, WC>(acc, raw[u], x, ku, Kin, nr);
    }
  }
}

// The same with one element per lane and step (any Kin, any alignment): elements first, first + stride, ...
template <class D, int R, int WC>
static __device__ __forceinline__ void gemv_dot_scalar(float (&acc)[R][WC], const typename D::T* x,
                                                       const typename D::T* const (&w)[WC], u64 Kin, int nr, u64 first,
                                                       u64 stride) {
  for (u64 k = first; k < Kin; k += stride) {
    float wv[WC];
#pragma unroll
    for (int c = 0; c < WC; c++) wv[c] = D::load(w[c][k]);
#pragma unroll
    for (int r = 0; r < R; r++) {
      if (r >= nr) break;
      const float xv = D::load(x[(u64)r * Kin + k]);
#pragma unroll
      for (int c = 0; c < WC; c++) acc[r][c] = fmaf(xv, wv[c], acc[r][c]);
    }
  }
}

// log2 of R·WC (a power of two ≤ 32): the sums a warp reduces.
template <int R, int WC>
struct GemvSums {
  enum { N = R * WC, LOG = (N >= 32) ? 5 : (N >= 16) ? 4 : (N >= 8) ? 3 : (N >= 4) ? 2 : (N >= 2) ? 1 : 0 };
};

// The (row, column) whose total lane `lane` holds after gemv_warp_sum / gemv_team_dot: index r · WC + c, the same
// for the 32 / (R·WC) consecutive lanes of a group.
template <int R, int WC>
static __device__ __forceinline__ int gemv_slot(int lane) {
  return lane >> (5 - GemvSums<R, WC>::LOG);
}
// Whether `lane` is the first of its group (the one that stores its total).
template <int R, int WC>
static __device__ __forceinline__ bool gemv_writes(int lane) {
  return (lane & ((1 << (5 - GemvSums<R, WC>::LOG)) - 1)) == 0;
}

// One stage of the transposing butterfly: lanes with bit `width` set keep the upper half of the COUNT values, the
// others the lower half, each adding the partner lane's copy of the half it keeps; then the next stage on COUNT / 2.
// Once one value is left, the remaining stages only add.
template <int COUNT>
static __device__ __forceinline__ void gemv_fold(float* v, int lane, int width) {
  const int half = COUNT / 2;
  const bool upper = (lane & width) != 0;
#pragma unroll
  for (int i = 0; i < half; i++) {
    const float lo = v[i], hi = v[i + half];  // values, not a select of addresses (which would put v in local memory)
    v[i] = (upper ? hi : lo) + __shfl_xor_sync(FULL_MASK, upper ? lo : hi, width);
  }
  gemv_fold<half>(v, lane, width / 2);
}
template <>
__device__ __forceinline__ void gemv_fold<1>(float* v, int, int width) {
  for (; width >= 1; width /= 2) v[0] += __shfl_xor_sync(FULL_MASK, v[0], width);
}

// Sums acc over the warp (R·WC - 1 + 5 - log2(R·WC) shuffles); lane l returns the total of sum gemv_slot(l).
template <int R, int WC>
static __device__ __forceinline__ float gemv_warp_sum(const float (&acc)[R][WC]) {
  float v[R * WC];
#pragma unroll
  for (int i = 0; i < R * WC; i++) v[i] = acc[i / WC][i % WC];
  gemv_fold<R * WC>(v, threadIdx.x % 32, 16);
  return v[0];
}

// One unit: the team's totals Σ_k x[r, k] · w[c][k] for rows r < nr ≤ R of x (row stride Kin) and the WC weight rows
// w[c] (each Kin long; point a column past the unit's last at a real row: its loads stay in bounds and its total is
// simply not stored). Lane l of the team's part-0 warp returns the total of (r, c) = gemv_slot<R, WC>(l) (r · WC + c);
// the other warps' results are partial. All S warps of the team call it together, in the same order of units.
// vector: Kin % V == 0 and x, every w[c] 16-byte aligned.
template <class D, int R, int WC>
static __device__ float gemv_team_dot(const typename D::T* x, const typename D::T* const (&w)[WC], u64 Kin, int nr,
                                      bool vector, GemvTeam& team) {
  float acc[R][WC];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int c = 0; c < WC; c++) acc[r][c] = 0.0f;
  const int lane = threadIdx.x % 32;
  const u64 lanes = 32 * (u64)team.warps, me = (u64)team.part * 32 + lane;
  if (vector) gemv_dot_vector<D, R, WC>(acc, x, w, Kin, nr, me * Vec16<D>::N, lanes * Vec16<D>::N);
  else gemv_dot_scalar<D, R, WC>(acc, x, w, Kin, nr, me, lanes);
  float total = gemv_warp_sum<R, WC>(acc);
  if (team.warps > 1) {
    float* s = team.scratch + team.parity * team.warps * 32;
    team.parity ^= 1;
    s[team.part * 32 + lane] = total;
    named_barrier(team.barrier, team.warps * 32);
    if (team.part == 0)
      for (int p = 1; p < team.warps; p++) total += s[p * 32 + lane];
  }
  return total;
}

// One unit of a GEMV kernel: out[row, col0 + c] = Σ_k x[row, k] · w[col0 + c, k] (+ bias[col0 + c]) for the rows
// [rowBegin, rowEnd) of x, in passes of R rows, and the columns c < WC with col0 + c < Nout; x [*, Kin], w [Nout, Kin]
// (one matrix), out [*, Nout] row-major, bias [Nout] stored as BiasD (f32 or the dtype) or null; f32 sums rounded
// once to D. Called by all warps of the team together (see gemv_team_dot).
template <class D, class BiasD, int R, int WC>
static __device__ void gemv_unit(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                 const typename BiasD::T* bias, u64 rowBegin, u64 rowEnd, u64 col0, u64 Nout, u64 Kin,
                                 bool vector, GemvTeam& team) {
  const int nc = Nout - col0 < WC ? (int)(Nout - col0) : WC;
  const typename D::T* ws[WC];
#pragma unroll
  for (int c = 0; c < WC; c++) ws[c] = w + (col0 + (c < nc ? c : nc - 1)) * Kin;
  const int lane = threadIdx.x % 32;
  const int slot = gemv_slot<R, WC>(lane), r = slot / WC, c = slot % WC;
  const bool writer = team.part == 0 && gemv_writes<R, WC>(lane) && c < nc;
  const float b = (writer && bias != 0) ? BiasD::load(bias[col0 + c]) : 0.0f;
  for (u64 row0 = rowBegin; row0 < rowEnd; row0 += R) {
    const int nr = rowEnd - row0 < R ? (int)(rowEnd - row0) : R;
    const float total = gemv_team_dot<D, R, WC>(x + row0 * Kin, ws, Kin, nr, vector, team);
    if (writer && r < nr) out[(row0 + r) * Nout + col0 + c] = D::store(total + b);
  }
}

// The outer loop of the experts' grouped GEMV (decode): which hit expert and which group of weight rows each team of
// warps works on. The dot products themselves are gemv.cuh's; what a unit stores is the caller's (a plain linear
// output, or the SwiGLU of gate and up sums: grouped-gemv-glu.cu). Include dtypes.cuh and gemv.cuh first.
//
// Each block first lists the hit experts in order (one warp scans the offsets, 256 experts a round trip) into
// dynamic shared memory (3 × min(E, N) ints: expert, first row, end row); the work is then units of (hit expert,
// group of weight rows), unit u going to team u mod (teams) as in gemv.cu, so a grid of at most one resident wave
// (planned by the host: gemv.ts planGemv) is spread evenly over however many experts are hit. Rows are ints: the
// launchers refuse N ≥ 2^31.
//
// Legend: E = experts, N = routed rows, S = warps a team (gemv.cuh).
#pragma once

// Clamped rows [begin, end) of expert e (empty for e ≥ E): offsets clamped to [0, N] and made non-decreasing, so bad
// offsets cannot reach outside x or out.
static __device__ __forceinline__ void hit_expert_rows(u64* begin, u64* end, const int* offsets, int E, u64 N, int e) {
  *begin = *end = 0;
  if (e >= E) return;
  const int lo = offsets[e], hi = offsets[e + 1];
  *begin = lo < 0 ? 0 : ((u64)lo > N ? N : (u64)lo);
  *end = hi < 0 ? 0 : ((u64)hi > N ? N : (u64)hi);
  if (*end < *begin) *end = *begin;
}

// Run by one warp: hits[j], hits[cap + j], hits[2 cap + j] = expert, first row, end row of the j-th expert with rows
// (experts in order), *count = how many (at most cap; with valid offsets at most min(E, N) experts have rows). The
// offsets are read 256 experts at a time, all loads issued before any is used.
#define HIT_SCAN_CHUNKS 8
static __device__ void list_hit_expert_rows(int* hits, int* count, const int* offsets, int E, u64 N, int cap) {
  const int lane = threadIdx.x % 32;
  int carry = 0;
  for (int base = 0; base < E; base += 32 * HIT_SCAN_CHUNKS) {
    u64 begin[HIT_SCAN_CHUNKS], end[HIT_SCAN_CHUNKS];
#pragma unroll
    for (int j = 0; j < HIT_SCAN_CHUNKS; j++) hit_expert_rows(&begin[j], &end[j], offsets, E, N, base + 32 * j + lane);
#pragma unroll
    for (int j = 0; j < HIT_SCAN_CHUNKS; j++) {
      const bool hit = end[j] > begin[j];
      const unsigned filled = __ballot_sync(FULL_MASK, hit);
      const int at = carry + __popc(filled & ((1u << lane) - 1u));
      if (hit && at < cap) {
        hits[at] = base + 32 * j + lane;
        hits[cap + at] = (int)begin[j];
        hits[2 * cap + at] = (int)end[j];
      }
      carry += __popc(filled);
    }
  }
  if (lane == 0) *count = carry < cap ? carry : cap;
}

// Run by every thread of the block (S warps a team, blockDim.x / 32 a multiple of S; dynamic shared memory of
// 3 × min(E, N) ints): lists the hit experts, then calls unit(expert, rowBegin, rowEnd, group, team) for each of the
// calling team's units, groups < `groups` per hit expert. All warps of a team make the same calls, in the same order.
template <class Unit>
static __device__ void for_each_expert_unit(const int* offsets, int E, u64 N, u64 groups, int S, Unit unit) {
  extern __shared__ int hits[];  // [3][cap]
  __shared__ float scratch[2 * GEMV_MAX_WARPS * 32];
  __shared__ int hitCount;
  const int cap = (u64)E < N ? E : (int)N;
  if (threadIdx.x < 32) list_hit_expert_rows(hits, &hitCount, offsets, E, N, cap);
  __syncthreads();
  GemvTeam team = gemv_team(scratch, S);
  const u64 teams = blockDim.x / 32 / S, units = (u64)hitCount * groups;
  for (u64 u = (threadIdx.x / 32 / S) * (u64)gridDim.x + blockIdx.x; u < units; u += teams * gridDim.x) {
    const int slot = (int)(u / groups);
    unit((u64)hits[slot], (u64)hits[cap + slot], (u64)hits[2 * cap + slot], u % groups, team);
  }
}

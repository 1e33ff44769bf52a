// MoE dispatch kernels: sort the routed slots by expert (stable counting sort, on the device), gather token rows
// into sorted order, and the weighted scatter-add back to token order (deterministic: no atomics on values).
// Launchers in moe.ts. Compiled by NVRTC; dtypes from dtypes.cuh (inlined by launch.ts).
//
// Legend: T = tokens, E = experts, K = top-k, N = routed slots (T*K), D = row length, C = chunks of SORT_CHUNK slots.
//   experts: i32 [N] (slot s = t*K + j);  slots: i32 [N], sorted;  offsets: i32 [E + 1];  counts: i32 [C, E] scratch.
//
// sortByExpert is three launches: sort_count (each chunk's histogram), sort_offsets (offsets, and each chunk's first
// row per expert), sort_scatter (one warp per chunk walks its slots in order, 32 at a time, so equal experts keep
// slot order). Expert ids outside [0, E) are skipped (route never makes them).

#include "dtypes.cuh"
#define SORT_CHUNK 2048
#define MAX_TOPK 64

static __device__ __forceinline__ u64 min_u64(u64 a, u64 b) { return a < b ? a : b; }

// ---- sortByExpert -----------------------------------------------------------------------------------------------
// counts[c, e] = how many slots of chunk c go to expert e. Dynamic shared memory: E ints.
extern "C" __global__ void sort_count(int* counts, const int* experts, u64 n, int E) {
  extern __shared__ int histogram[];
  for (int e = threadIdx.x; e < E; e += blockDim.x) histogram[e] = 0;
  __syncthreads();
  const u64 start = (u64)blockIdx.x * SORT_CHUNK, end = min_u64(n, start + SORT_CHUNK);
  for (u64 s = start + threadIdx.x; s < end; s += blockDim.x) {
    const int e = experts[s];
    if ((unsigned)e < (unsigned)E) atomicAdd(&histogram[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) counts[(u64)blockIdx.x * E + e] = histogram[e];
}

// One block: offsets [E + 1] = exclusive scan of the per-expert totals; counts[c, e] is replaced by the sorted row
// where chunk c's first slot of expert e goes. Dynamic shared memory: E ints.
extern "C" __global__ void sort_offsets(int* offsets, int* counts, int chunks, int E) {
  extern __shared__ int start[];
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int total = 0;
    for (int c = 0; c < chunks; c++) total += counts[(u64)c * E + e];
    start[e] = total;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    int carry = 0;
    for (int base = 0; base < E; base += 32) {
      const int e = base + lane;
      const int total = e < E ? start[e] : 0;
      int inclusive = total;
      for (int d = 1; d < 32; d <<= 1) {
        const int up = __shfl_up_sync(FULL_MASK, inclusive, d);
        if (lane >= d) inclusive += up;
      }
      if (e < E) {
        start[e] = carry + inclusive - total;
        offsets[e] = carry + inclusive - total;
      }
      carry += __shfl_sync(FULL_MASK, inclusive, 31);
    }
    if (lane == 0) offsets[E] = carry;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    int row = start[e];
    for (int c = 0; c < chunks; c++) {
      const int count = counts[(u64)c * E + e];
      counts[(u64)c * E + e] = row;
      row += count;
    }
  }
}

// One warp per chunk: slots[row] = s for the chunk's slots in order; rows from sort_offsets' starts.
// Dynamic shared memory: E ints (the next free row of each expert).
extern "C" __global__ void sort_scatter(int* slots, const int* experts, const int* starts, u64 n, int E) {
  extern __shared__ int next[];
  const int lane = threadIdx.x;
  for (int e = lane; e < E; e += 32) next[e] = starts[(u64)blockIdx.x * E + e];
  __syncwarp();
  const unsigned lower = (1u << lane) - 1;
  const u64 start = (u64)blockIdx.x * SORT_CHUNK, end = min_u64(n, start + SORT_CHUNK);
  for (u64 base = start; base < end; base += 32) {
    const u64 s = base + lane;
    int e = s < end ? experts[s] : -1;
    if ((unsigned)e >= (unsigned)E) e = -1;
    const unsigned same = __match_any_sync(FULL_MASK, e);
    if (e >= 0) slots[next[e] + __popc(same & lower)] = (int)s;
    __syncwarp();
    if (e >= 0 && (same & lower) == 0) next[e] += __popc(same);
    __syncwarp();
  }
}

// ---- gatherRows: out [N, D] row n = x [T, D] row slots[n] / K ---------------------------------------------------
#define GATHER_ROWS_KERNEL(name, D)                                                                                \
  extern "C" __global__ void gather_rows_##name(D::T* out, const D::T* x, const int* slots, int K, u64 rows,       \
                                                u64 cols) {                                                        \
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                           \
      const D::T* src = x + (u64)(slots[r] / K) * cols;                                                            \
      D::T* dst = out + r * cols;                                                                                  \
      for (u64 c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = src[c];                                        \
    }                                                                                                              \
  }
GATHER_ROWS_KERNEL(f32, F32)
GATHER_ROWS_KERNEL(bf16, BF16)
GATHER_ROWS_KERNEL(f16, F16)

// ---- scatterAddWeighted -----------------------------------------------------------------------------------------
// position [T*K] (filled with -1 first) = the sorted row of each slot: position[slots[n]] = n.
extern "C" __global__ void invert_slots(int* position, const int* slots, u64 n, u64 slotCount) {
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    const int s = slots[i];
    if (s >= 0 && (u64)s < slotCount) position[s] = (int)i;
  }
}

// One block per token: out[t] = Σ weights[s] · y[position[s]] over the token's slots s, summed in sorted-row order
// (the CPU reference's order) with fmaf, rounded once to the output dtype.
#define SCATTER_ADD_WEIGHTED_KERNEL(name, D)                                                                       \
  extern "C" __global__ void scatter_add_weighted_##name(D::T* out, const D::T* y, const int* position,            \
                                                         const float* weights, int K, u64 tokens, u64 cols) {     \
    __shared__ int rows[MAX_TOPK];                                                                                 \
    __shared__ float rowWeights[MAX_TOPK];                                                                         \
    __shared__ int count;                                                                                          \
    for (u64 t = blockIdx.x; t < tokens; t += gridDim.x) {                                                         \
      if ((int)threadIdx.x < K) {                                                                                    \
        rows[threadIdx.x] = position[t * K + threadIdx.x];                                                         \
        rowWeights[threadIdx.x] = weights[t * K + threadIdx.x];                                                    \
      }                                                                                                            \
      __syncthreads();                                                                                             \
      if (threadIdx.x == 0) count = sort_token_rows(rows, rowWeights, K);                                          \
      __syncthreads();                                                                                             \
      for (u64 c = threadIdx.x; c < cols; c += blockDim.x) {                                                       \
        float acc = 0.0f;                                                                                          \
        for (int i = 0; i < count; i++) acc = fmaf(rowWeights[i], D::load(y[(u64)rows[i] * cols + c]), acc);      \
        out[t * cols + c] = D::store(acc);                                                                         \
      }                                                                                                            \
      __syncthreads();                                                                                             \
    }                                                                                                              \
  }

// Insertion sort of one token's K (row, weight) pairs by row, dropping rows < 0 (slots no sorted row holds);
// returns how many are left.
static __device__ int sort_token_rows(int* rows, float* rowWeights, int K) {
  int count = 0;
  for (int j = 0; j < K; j++) {
    const int row = rows[j];
    const float w = rowWeights[j];
    if (row < 0) continue;
    int i = count++;
    for (; i > 0 && rows[i - 1] > row; i--) {
      rows[i] = rows[i - 1];
      rowWeights[i] = rowWeights[i - 1];
    }
    rows[i] = row;
    rowWeights[i] = w;
  }
  return count;
}

SCATTER_ADD_WEIGHTED_KERNEL(f32, F32)
SCATTER_ADD_WEIGHTED_KERNEL(bf16, BF16)
SCATTER_ADD_WEIGHTED_KERNEL(f16, F16)

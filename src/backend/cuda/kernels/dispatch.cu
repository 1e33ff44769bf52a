// MoE dispatch kernels: sort the routed slots by expert (stable counting sort, on the device), gather token rows
// into sorted order, and the weighted scatter-add back to token order (deterministic: no atomics on values).
// Launchers in moe.ts. Compiled by NVRTC; dtypes from dtypes.cuh (inlined by launch.ts).
//
// Legend: T = tokens, E = experts, K = top-k, N = routed slots (T*K), D = row length, C = chunks of SORT_CHUNK slots,
// V = elements per pack (pack.cuh: 16 bytes, or 1 where rows cannot be aligned).
//   experts: i32 [N] (slot s = t*K + j);  slots: i32 [N], sorted;  offsets: i32 [E + 1];  counts: i32 [C, E] scratch.
//
// sortByExpert is one launch for few slots (sort_small: decode) and three for many: sort_count (each chunk's
// histogram), sort_offsets (offsets, and each chunk's first row per expert), sort_scatter (one warp per chunk walks
// its slots in order, 32 at a time, so equal experts keep slot order). Expert ids outside [0, E) are skipped (route
// never makes them).

#include "dtypes.cuh"
#include "pack.cuh"
#define SORT_CHUNK 2048

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

// ---- sortByExpert in one launch, for few slots --------------------------------------------------------------------
// One block (blockDim a multiple of 32, ≤ 1024): experts and the histogram in shared memory, offsets by a block-wide
// exclusive scan, then warp 0 walks the slots in order, 32 at a time, as sort_scatter does (stable). Dynamic shared
// memory: (n + E) ints. The launcher takes this path for n ≤ SORT_SMALL_SLOTS and E ≤ SORT_SMALL_EXPERTS.
extern "C" __global__ void __launch_bounds__(1024) sort_small(int* slots, int* offsets, const int* experts, int n, int E) {
  extern __shared__ int sort_shared[];
  int* ids = sort_shared;  // [n]: the expert of each slot, -1 for ids outside [0, E)
  int* next = ids + n;     // [E]: counts, then each expert's next free sorted row
  __shared__ int warpTotals[32];
  for (int e = threadIdx.x; e < E; e += blockDim.x) next[e] = 0;
  __syncthreads();
  for (int s = threadIdx.x; s < n; s += blockDim.x) {
    int e = experts[s];
    if ((unsigned)e >= (unsigned)E) e = -1;
    ids[s] = e;
    if (e >= 0) atomicAdd(&next[e], 1);
  }
  __syncthreads();
  // Exclusive scan of next[0..E): thread i owns the run [i·per, (i+1)·per).
  const int per = (E + blockDim.x - 1) / blockDim.x, first = threadIdx.x * per;
  int total = 0;
  for (int e = first; e < first + per && e < E; e++) total += next[e];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inclusive = total;
  for (int d = 1; d < 32; d <<= 1) {
    const int up = __shfl_up_sync(FULL_MASK, inclusive, d);
    if (lane >= d) inclusive += up;
  }
  if (lane == 31) warpTotals[warp] = inclusive;
  __syncthreads();
  int row = inclusive - total;
  for (int w = 0; w < warp; w++) row += warpTotals[w];
  for (int e = first; e < first + per && e < E; e++) {
    const int count = next[e];
    offsets[e] = row;
    next[e] = row;
    row += count;
  }
  if (threadIdx.x == blockDim.x - 1) offsets[E] = row;  // the last thread's run ends at the total
  __syncthreads();
  if (warp != 0) return;
  const unsigned lower = (1u << lane) - 1;
  for (int base = 0; base < n; base += 32) {
    const int s = base + lane;
    const int e = s < n ? ids[s] : -1;
    const unsigned same = __match_any_sync(FULL_MASK, e);
    if (e >= 0) slots[next[e] + __popc(same & lower)] = s;
    __syncwarp();
    if (e >= 0 && (same & lower) == 0) next[e] += __popc(same);
    __syncwarp();
  }
}

// ---- row tiling -------------------------------------------------------------------------------------------------
// gather_rows and scatter_add_weighted: `tpr` threads per row (a power of two dividing blockDim), blockDim / tpr rows
// per block, and each row's packs cut into `chunks` runs of tpr packs, one run per block (blockIdx.x = rowBlock ·
// chunks + chunk; the grid is a multiple of chunks). Thread j of a row walks packs chunk · tpr + j, stepping
// chunks · tpr, and rows stepping (gridDim.x / chunks) · rows per block.
struct RowTile {
  u64 row;        // this thread's first row
  u64 rowStep;    // rows between its rows
  u64 firstUnit;  // its first pack in the row
  u64 unitStep;   // packs between its packs
  u64 rowBase;    // first row of this block (the same for every thread of the block: uniform loops use it)
};

static __device__ __forceinline__ RowTile row_tile(int tpr, int chunks) {
  const int groups = blockDim.x / tpr;
  const unsigned chunk = blockIdx.x % chunks, rowBlock = blockIdx.x / chunks, rowBlocks = gridDim.x / chunks;
  RowTile t;
  t.rowBase = (u64)rowBlock * groups;
  t.row = t.rowBase + threadIdx.x / tpr;
  t.rowStep = (u64)rowBlocks * groups;
  t.firstUnit = (u64)chunk * tpr + threadIdx.x % tpr;
  t.unitStep = (u64)chunks * tpr;
  return t;
}

// ---- gatherRows: out [N, D] row n = x [T, D] row slots[n] / K ---------------------------------------------------
// Row tiling (above): each thread copies packs of V elements (16 bytes when the launcher could align them).
template <class D, int V>
static __device__ void gather_rows(typename D::T* __restrict__ out, const typename D::T* __restrict__ x,
                                   const int* __restrict__ slots, int K, u64 rows, u64 cols, int tpr, int chunks) {
  const RowTile tile = row_tile(tpr, chunks);
  const u64 units = cols / V;
  for (u64 r = tile.row; r < rows; r += tile.rowStep) {
    const typename D::T* src = x + (u64)(slots[r] / K) * cols;
    for (u64 u = tile.firstUnit; u < units; u += tile.unitStep) {
      store_pack<typename D::T, V>(out + r * cols + u * V, load_pack<typename D::T, V>(src + u * V));
    }
  }
}

#define GATHER_ROWS_KERNEL(name, D)                                                                                \
  extern "C" __global__ void gather_rows_##name(D::T* out, const D::T* x, const int* slots, int K, u64 rows,       \
                                                u64 cols, int tpr, int chunks, int packed) {                       \
    if (packed) gather_rows<D, Packed<D>::V>(out, x, slots, K, rows, cols, tpr, chunks);                           \
    else gather_rows<D, 1>(out, x, slots, K, rows, cols, tpr, chunks);                                             \
  }
GATHER_ROWS_KERNEL(f32, F32)
GATHER_ROWS_KERNEL(bf16, BF16)
GATHER_ROWS_KERNEL(f16, F16)

// ---- scatterAddWeighted -----------------------------------------------------------------------------------------
// position [T*K] (filled with -1 first) = the sorted row of each slot: position[slots[n]] = n. For many slots only:
// with few, scatter_add_weighted finds the rows itself.
extern "C" __global__ void invert_slots(int* position, const int* slots, u64 n, u64 slotCount) {
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    const int s = slots[i];
    if (s >= 0 && (u64)s < slotCount) position[s] = (int)i;
  }
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

// out[t] = Σ weights[s] · y[row(s)] over the token's slots s, summed in sorted-row order (the CPU reference's order)
// with fmaf, rounded once to the output dtype. Row tiling (above); the block first gathers its tokens' K (row,
// weight) pairs into shared memory (groups · K ≤ SCATTER_PAIRS, which the launcher's tpr ensures): the rows from
// `position` (invert_slots' output) when given, else (position = 0, few slots) by scanning all n slots. Each thread
// then loads up to SCATTER_BATCH expert rows' packs at once before adding them in order.
#define SCATTER_PAIRS 1024
#define SCATTER_BATCH 8
#define SCATTER_THREADS 128
struct ScatterShared {
  int rows[SCATTER_PAIRS];
  float rowWeights[SCATTER_PAIRS];
  int counts[SCATTER_THREADS];  // one per row group; groups ≤ blockDim
};
template <class D, int V>
static __device__ void scatter_add_weighted(typename D::T* __restrict__ out, const typename D::T* __restrict__ y,
                                            const int* __restrict__ slots, const int* __restrict__ position,
                                            const float* __restrict__ weights, int K, u64 tokens, u64 cols, u64 n,
                                            int tpr, int chunks, ScatterShared& shared) {
  int* rows = shared.rows;
  float* rowWeights = shared.rowWeights;
  int* counts = shared.counts;
  typedef Pack<typename D::T, V> P;
  const RowTile tile = row_tile(tpr, chunks);
  const int groups = blockDim.x / tpr, group = threadIdx.x / tpr, pairs = groups * K;
  const u64 units = cols / V;
  for (u64 t0 = tile.rowBase; t0 < tokens; t0 += tile.rowStep) {
    for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
      const u64 s = t0 * K + i;  // slot (t0 + i / K) * K + i % K
      const bool real = t0 + i / K < tokens;
      rows[i] = real && position ? position[s] : -1;
      rowWeights[i] = real ? weights[s] : 0.0f;
    }
    if (!position) {
      __syncthreads();
#pragma unroll 8
      for (u64 m = threadIdx.x; m < n; m += blockDim.x) {
        const int s = slots[m];
        const u64 i = (u64)s - t0 * K;  // this block's pair index when the slot is one of its tokens'
        if (s >= 0 && (u64)s < tokens * K && i < (u64)pairs) rows[i] = (int)m;
      }
    }
    __syncthreads();
    if (threadIdx.x % tpr == 0) counts[group] = sort_token_rows(rows + group * K, rowWeights + group * K, K);
    __syncthreads();
    const u64 t = t0 + group;
    const int count = counts[group];
    const int* tokenRows = rows + group * K;
    const float* tokenWeights = rowWeights + group * K;
    for (u64 u = tile.firstUnit; t < tokens && u < units; u += tile.unitStep) {
      float acc[V];
#pragma unroll
      for (int e = 0; e < V; e++) acc[e] = 0.0f;
      for (int i0 = 0; i0 < count; i0 += SCATTER_BATCH) {
        P p[SCATTER_BATCH];
#pragma unroll
        for (int b = 0; b < SCATTER_BATCH; b++) {
          if (i0 + b < count) p[b] = load_pack<typename D::T, V>(y + (u64)tokenRows[i0 + b] * cols + u * V);
        }
#pragma unroll
        for (int b = 0; b < SCATTER_BATCH; b++) {
          if (i0 + b < count) {
            const float w = tokenWeights[i0 + b];
#pragma unroll
            for (int e = 0; e < V; e++) acc[e] = fmaf(w, D::load(p[b].v[e]), acc[e]);
          }
        }
      }
      P result;
#pragma unroll
      for (int e = 0; e < V; e++) result.v[e] = D::store(acc[e]);
      store_pack<typename D::T, V>(out + t * cols + u * V, result);
    }
    __syncthreads();
  }
}

#define SCATTER_ADD_WEIGHTED_KERNEL(name, D)                                                                       \
  extern "C" __global__ void __launch_bounds__(SCATTER_THREADS, 4)                                                              \
      scatter_add_weighted_##name(D::T* out, const D::T* y, const int* slots, const int* position,                 \
                                  const float* weights, int K, u64 tokens, u64 cols, u64 n, int tpr, int chunks,   \
                                  int packed) {                                                                    \
    __shared__ ScatterShared shared;                                                                               \
    if (packed) {                                                                                                  \
      scatter_add_weighted<D, Packed<D>::V>(out, y, slots, position, weights, K, tokens, cols, n, tpr, chunks, shared); \
    } else {                                                                                                       \
      scatter_add_weighted<D, 1>(out, y, slots, position, weights, K, tokens, cols, n, tpr, chunks, shared);       \
    }                                                                                                              \
  }
SCATTER_ADD_WEIGHTED_KERNEL(f32, F32)
SCATTER_ADD_WEIGHTED_KERNEL(bf16, BF16)
SCATTER_ADD_WEIGHTED_KERNEL(f16, F16)

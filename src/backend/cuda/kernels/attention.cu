// Causal grouped-query attention on CUDA cores, for any head dims and f32, bf16 or f16 storage (q, k, v and out in
// one dtype), computed in f32 and rounded once: attention_<dtype>; and attention_merge_<dtype>, which joins the
// partials of a split key range. Rows, key ranges, splits and the write-out are attention.cuh's (read it first).
// bf16/f16 with head dims the tensor-core kernel takes run attention-mma.cu instead; the launcher half is attention.ts.
//
// attention_<dtype>: a block of BLOCK threads per (row run of ≤ MAX_ROWS rows, sequence, kv head, split). Shared
// memory holds the rows' queries and f32 output accumulators, so each key and value the block reads serves all its
// rows. Keys go in tiles of TILE with an online softmax: (1) a warp per key, lanes striding over Dh, computes the
// key's score for every row (shuffle reductions); (2) a warp per row takes the tile's max, turns scores into
// probabilities (lane i owns key i) and updates the row's max and denominator; (3) each thread owns output dims and
// adds p · v for every row, reading each value once (coalesced across threads).
// Dynamic shared memory: rowsPerBlock · (Dh + Dv + TILE + 5) words.
//
// attention_merge_<dtype>: a block per (b, t, h) row. M = max over splits (and the sink) of the running max,
// L = Σ l_s e^(m_s - M) + e^(sink - M), out = Σ acc_s e^(m_s - M) / L, rounded once. A split with m_s = -inf (no key)
// has weight 0 and wrote acc = 0, so it adds nothing.
//
// Compiled by NVRTC; launch.ts inlines dtypes.cuh and attention.cuh.

#include "dtypes.cuh"
#include "attention.cuh"

#define BLOCK 128
#define WARPS (BLOCK / 32)
#define TILE 32      // keys per tile: one per lane in step 2
#define MAX_ROWS 16  // rows per block (register arrays below)

// The three steps of one tile of n keys from j0 (k_tile, v_tile: the tile's first cache row; rows r < R).
// 1. Scores of every row for each key (a warp per key, lanes striding over Dh, shuffle sums) into p_s.
template <typename D>
__device__ __forceinline__ void simple_scores(
    float* p_s, const float* q_s, const typename D::T* k_tile, u64 k_stride, const int* first_s, const int* last_s,
    int R, int Dh, int j0, int n, float scale) {
  const int lane = threadIdx.x % 32;
  for (int i = threadIdx.x / 32; i < n; i += WARPS) {
    const typename D::T* k_row = k_tile + (u64)i * k_stride;
    float dot[MAX_ROWS];
#pragma unroll
    for (int r = 0; r < MAX_ROWS; r++) dot[r] = 0.0f;
    for (int d = lane; d < Dh; d += 32) {
      const float kd = D::load(k_row[d]);
#pragma unroll
      for (int r = 0; r < MAX_ROWS; r++) {
        if (r < R) dot[r] += q_s[r * Dh + d] * kd;
      }
    }
    const int j = j0 + i;
#pragma unroll
    for (int r = 0; r < MAX_ROWS; r++) {
      if (r < R) {  // the same for the whole warp
        float x = dot[r];
        for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(FULL_MASK, x, offset);
        if (lane == 0) p_s[r * TILE + i] = j >= first_s[r] && j <= last_s[r] ? x * scale : NEG_INF;
      }
    }
  }
}

// 2. Per row (a warp each, lane i holding key i): the tile's max, probabilities in place of the scores, and the new
// running max and denominator; rescale_s gets e^(old max - new max) for step 3.
__device__ __forceinline__ void simple_softmax(float* p_s, float* m_s, float* l_s, float* rescale_s, int R, int n) {
  const int lane = threadIdx.x % 32;
  for (int r = threadIdx.x / 32; r < R; r += WARPS) {
    const float s = lane < n ? p_s[r * TILE + lane] : NEG_INF;
    float tile_max = s;
    for (int offset = 16; offset > 0; offset /= 2) tile_max = fmaxf(tile_max, __shfl_xor_sync(FULL_MASK, tile_max, offset));
    const float m_old = m_s[r], m_new = fmaxf(m_old, tile_max);
    const float p = exp_from(s, m_new);
    if (lane < n) p_s[r * TILE + lane] = p;
    float sum = p;
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(FULL_MASK, sum, offset);
    if (lane == 0) {
      const float c = exp_from(m_old, m_new);
      rescale_s[r] = c;
      l_s[r] = l_s[r] * c + sum;
      m_s[r] = m_new;
    }
  }
}

// 3. Each thread's output dims of every row: rescaled to the new max, plus p · v (each value read once).
template <typename D>
__device__ __forceinline__ void simple_add_pv(
    float* acc_s, const float* p_s, const float* rescale_s, const typename D::T* v_tile, u64 v_stride, int R, int Dv, int n) {
  for (int d = threadIdx.x; d < Dv; d += BLOCK) {
    float a[MAX_ROWS];
#pragma unroll
    for (int r = 0; r < MAX_ROWS; r++) a[r] = r < R ? acc_s[r * Dv + d] * rescale_s[r] : 0.0f;
    for (int i = 0; i < n; i++) {
      const float vd = D::load(v_tile[(u64)i * v_stride + d]);
#pragma unroll
      for (int r = 0; r < MAX_ROWS; r++) {
        if (r < R) a[r] += p_s[r * TILE + i] * vd;
      }
    }
#pragma unroll
    for (int r = 0; r < MAX_ROWS; r++) {
      if (r < R) acc_s[r * Dv + d] = a[r];
    }
  }
}

template <typename D>
__device__ void attention_rows(
    typename D::T* out, float* part_ml, float* part_acc, const typename D::T* q, const typename D::T* k,
    const typename D::T* v, const float* sinks, const int* positions, int B, int T, int S, int H, int Hkv, int Dh,
    int Dv, int window, int splits, int rowsPerBlock, float scale) {
  extern __shared__ float smem[];
  const int G = H / Hkv, RB = rowsPerBlock;
  float* q_s = smem;                      // [RB][Dh]  queries, widened
  float* acc_s = q_s + RB * Dh;           // [RB][Dv]  unnormalised outputs
  float* p_s = acc_s + RB * Dv;           // [RB][TILE] the tile's scores, then probabilities
  float* m_s = p_s + RB * TILE;           // [RB] running max
  float* l_s = m_s + RB;                  // [RB] running denominator
  float* rescale_s = l_s + RB;            // [RB] e^(old max - new max) of the current tile
  int* first_s = (int*)(rescale_s + RB);  // [RB] first key each row sees
  int* last_s = first_s + RB;             // [RB] last key each row sees

  const AttentionBlock blk = attention_block_coords(B, T, Hkv, G, RB, splits);
  const int R = blk.nrows, tid = threadIdx.x;
  for (int r = tid; r < R; r += BLOCK) {
    attention_row_keys(blk, r, positions, T, S, G, window, &first_s[r], &last_s[r]);
    m_s[r] = NEG_INF;
    l_s[r] = 0.0f;
  }
  for (int i = tid; i < R * Dh; i += BLOCK) q_s[i] = D::load(q[attention_row_offset(blk, i / Dh, T, H, G, Dh) + i % Dh]);
  for (int i = tid; i < R * Dv; i += BLOCK) acc_s[i] = 0.0f;
  __syncthreads();
  int start, end;
  attention_split_keys(first_s, last_s, R, splits, blk.split, TILE, &start, &end);

  const u64 k_stride = (u64)Hkv * Dh, v_stride = (u64)Hkv * Dv;  // elements between consecutive cache rows
  const typename D::T* k_seq = k + (u64)blk.b * S * k_stride + (u64)blk.kvh * Dh;
  const typename D::T* v_seq = v + (u64)blk.b * S * v_stride + (u64)blk.kvh * Dv;
  for (int j0 = start; j0 <= end; j0 += TILE) {
    const int n = min(TILE, end - j0 + 1);
    simple_scores<D>(p_s, q_s, k_seq + (u64)j0 * k_stride, k_stride, first_s, last_s, R, Dh, j0, n, scale);
    __syncthreads();
    simple_softmax(p_s, m_s, l_s, rescale_s, R, n);
    __syncthreads();
    simple_add_pv<D>(acc_s, p_s, rescale_s, v_seq + (u64)j0 * v_stride, v_stride, R, Dv, n);
    __syncthreads();  // the next tile rewrites p_s and rescale_s
  }
  attention_write_rows<D>(out, part_ml, part_acc, sinks, blk, acc_s, Dv, m_s, l_s, T, H, G, Dv, splits);
}

// A block of MERGE_THREADS per output row (b, t, h). The splits' weights e^(m_s - M) go to w_s; then each thread
// owns VEC consecutive dims (VEC = 4: 16-byte loads) of one of `groups` interleaved subsets of the splits, so a row's
// loads are spread over the block and many are in flight at once; the groups' sums meet in red_s.
#define MERGE_THREADS 128
#define MAX_SPLITS 256

struct __align__(16) Float4 {
  float x, y, z, w;
};

__device__ __forceinline__ float block_reduce(float x, bool max_not_sum, float* scratch /* [MERGE_THREADS / 32] */) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float y = __shfl_xor_sync(FULL_MASK, x, offset);
    x = max_not_sum ? fmaxf(x, y) : x + y;
  }
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < MERGE_THREADS / 32; w++) x = max_not_sum ? fmaxf(x, scratch[w]) : x + scratch[w];
  __syncthreads();  // scratch is reused by the next call
  return x;
}

template <typename D, int VEC>
__device__ void attention_merge_row(
    typename D::T* out, const float* part_ml, const float* part_acc, const float* sinks, int H, int Dv, int splits) {
  __shared__ float w_s[MAX_SPLITS];
  __shared__ float red_s[MERGE_THREADS * VEC];
  __shared__ float scratch[MERGE_THREADS / 32];
  const int tid = threadIdx.x;
  const u64 row = blockIdx.x;
  const float* ml = part_ml + row * splits * 2;
  const float sink = sinks ? sinks[row % H] : NEG_INF;
  float M = sink;
  for (int s = tid; s < splits; s += MERGE_THREADS) M = fmaxf(M, ml[s * 2]);
  M = block_reduce(M, true, scratch);
  float L = 0.0f;
  for (int s = tid; s < splits; s += MERGE_THREADS) {
    const float w = exp_from(ml[s * 2], M);  // 0 for a split that saw no key (its acc is 0 too)
    w_s[s] = w;
    L += ml[s * 2 + 1] * w;
  }
  L = block_reduce(L, false, scratch) + exp_from(sink, M);  // its barriers also publish w_s
  const float inv = L > 0.0f ? 1.0f / L : 0.0f;
  const float* acc = part_acc + row * splits * Dv;
  const int cols = Dv / VEC, groups = max(1, MERGE_THREADS / cols);
  // Sums over splits g, g + groups, ... of column c (VEC dims from c · VEC).
  auto column = [&](int c, int g, float (&a)[VEC]) {
    for (int v = 0; v < VEC; v++) a[v] = 0.0f;
#pragma unroll 4
    for (int s = g; s < splits; s += groups) {
      const float w = w_s[s];
      if (VEC == 4) {
        const Float4 x = *(const Float4*)&acc[(u64)s * Dv + c * 4];
        a[0] += x.x * w, a[1] += x.y * w, a[2] += x.z * w, a[3] += x.w * w;
      } else {
        a[0] += acc[(u64)s * Dv + c] * w;
      }
    }
  };
  if (groups == 1) {
    for (int c = tid; c < cols; c += MERGE_THREADS) {
      float a[VEC];
      column(c, 0, a);
      for (int v = 0; v < VEC; v++) out[row * Dv + c * VEC + v] = D::store(a[v] * inv);
    }
    return;
  }
  const int c = tid % cols, g = tid / cols;
  float a[VEC];
  column(c, g < groups ? g : splits, a);  // threads past cols · groups add nothing
  for (int v = 0; v < VEC; v++) red_s[tid * VEC + v] = a[v];
  __syncthreads();
  if (tid < cols) {
    for (int v = 0; v < VEC; v++) {
      float sum = 0.0f;
      for (int k = 0; k < groups; k++) sum += red_s[(k * cols + tid) * VEC + v];
      out[row * Dv + tid * VEC + v] = D::store(sum * inv);
    }
  }
}

#define ATTENTION_KERNELS(name, D)                                                                                  \
  extern "C" __global__ void __launch_bounds__(BLOCK, 4) attention_##name(                                             \
      D::T* out, float* part_ml, float* part_acc, const D::T* q, const D::T* k, const D::T* v, const float* sinks,  \
      const int* positions, int B, int T, int S, int H, int Hkv, int Dh, int Dv, int window, int splits,           \
      int rowsPerBlock, float scale) {                                                                              \
    attention_rows<D>(out, part_ml, part_acc, q, k, v, sinks, positions, B, T, S, H, Hkv, Dh, Dv, window, splits,  \
                      rowsPerBlock, scale);                                                                         \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(MERGE_THREADS) attention_merge_##name(                              \
      D::T* out, const float* part_ml, const float* part_acc, const float* sinks, int H, int Dv, int splits) {      \
    if (Dv % 4 == 0) attention_merge_row<D, 4>(out, part_ml, part_acc, sinks, H, Dv, splits);                       \
    else attention_merge_row<D, 1>(out, part_ml, part_acc, sinks, H, Dv, splits);                                   \
  }
FOR_EACH_DTYPE(ATTENTION_KERNELS)

// Causal grouped-query attention on tensor cores for bf16 and f16 storage (FlashAttention-2 style, mma.sync
// m16n8k16 with f32 accumulators, sm_80+): attention_mma_<dtype>_<Dh>_<Dv>_<KW>. Same contract, rows, key ranges,
// splits and write-out as attention.cu (see attention.cuh); attention_merge_<dtype> there joins the splits.
// Differences from the CUDA-core kernel: q·k accumulates bf16/f16 products in f32 in another order, and the
// probabilities are rounded to bf16/f16 before P·V (relative error 2^-9 / 2^-11 per weight, inside the dtypes'
// tolerance). The launcher half is attention.ts.
//
// A block is 4 warps; each warp holds 16 rows (t, g) in the M dimension of its mma tiles (rows past the block's own
// are zero and masked). KW = key groups: with KW = 4 (decode: ≤ 16 rows) the four warps share their 16 rows and each
// takes a quarter of every key tile; with KW = 1 (prefill) each warp has its own 16 rows (64 a block) and all take
// the whole tile. At the end the KW partial results of a row are joined in shared memory (log-sum-exp) and written by
// attention_write_rows.
//
// Per tile of KEY_TILE keys (cp.async into a two-deep ring of padded shared rows, so the next tile loads while this
// one is used; keys past the split's end are zero-filled and never read from global): S = Q·Kᵀ (Q fragments stay in
// registers for the whole run, K fragments by ldmatrix), scaled and masked per row (the row's first..last, the
// split's end), the online softmax in registers (each row's max over the 4 lanes that hold it), then O += P·V with P
// converted in registers from the accumulator layout to the A layout and V by transposing ldmatrix.
// Shared memory rows are padded by 16 bytes, so the 8 row addresses of an ldmatrix fall in 8 different bank groups.
//
// Legend: DH = key dim, DV = value dim (multiples of 32 and 16), KW = key groups, RW = 4 / KW row groups,
// WKEYS = keys per warp per tile, KS / VS = padded shared row lengths (elements).
//
// Compiled by NVRTC; launch.ts inlines dtypes.cuh, attention.cuh and mma-ptx.cuh (the PTX wrappers).

#include "dtypes.cuh"
#include "attention.cuh"
#include "mma-ptx.cuh"

#define MMA_WARPS 4
#define MMA_THREADS (MMA_WARPS * 32)
#define KEY_TILE 64

// Two floats stored as one 8-byte access.
struct __align__(8) FloatPair {
  float x, y;
};

// Shared memory a launch needs: the K/V ring plus first/last per row (the write-out reuses the ring).
#define MMA_SHARED_BYTES(DH, DV) (2 * KEY_TILE * ((DH) + 8 + (DV) + 8) * 2 + 2 * 64 * 4)

// ---- one warp's steps (16 rows; WKEYS keys of the tile at kt / vt in shared memory) ---------------------------

// Q fragments: DH / 16 A tiles of 16 rows × 16 dims, loaded once for the whole run (rows past nrows are zero).
template <typename D, int DH>
__device__ __forceinline__ void mma_load_q(
    unsigned (&qf)[DH / 16][4], const typename D::T* q, const AttentionBlock& blk, int row0, int T, int H, int G) {
  const int lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
#pragma unroll
  for (int ks = 0; ks < DH / 16; ks++) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int r = row0 + gid + (i & 1) * 8, d = ks * 16 + tig * 2 + (i >> 1) * 8;
      qf[ks][i] = r < blk.nrows ? *(const unsigned*)(q + attention_row_offset(blk, r, T, H, G, DH) + d) : 0u;
    }
  }
}

// s = Q·Kᵀ: WKEYS / 8 tiles of 16 rows × 8 keys; one ldmatrix_x4 gives two 16-dim steps of one key tile.
template <typename D, int DH, int WKEYS>
__device__ __forceinline__ void mma_scores(
    float (&s)[WKEYS / 8][4], const unsigned (&qf)[DH / 16][4], const typename D::T* kt) {
  constexpr int KS = DH + 8;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int n = 0; n < WKEYS / 8; n++) {
    s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < DH / 16; ks += 2) {
      unsigned b[4];
      ldmatrix_x4(b, kt + (n * 8 + lane % 8) * KS + ks * 16 + (lane / 8) * 8);
      Mma<D>::run(s[n], qf[ks], b[0], b[1]);
      Mma<D>::run(s[n], qf[ks + 1], b[2], b[3]);
    }
  }
}

// Scale and mask the scores (key jw + column; row i of the lane's two sees first[i]..last[i]), then the online
// softmax: new running max m, o and the lane's share of l rescaled to it, s turned into probabilities and added to l.
// Fragment elements 0, 1 are row gid, 2, 3 row gid + 8; a row's max is taken over the 4 lanes that hold it.
template <int DV, int WKEYS>
__device__ __forceinline__ void mma_online_softmax(
    float (&s)[WKEYS / 8][4], float (&o)[DV / 8][4], float (&m)[2], float (&l)[2], int jw, const int (&first)[2],
    const int (&last)[2], float scale) {
  const int tig = threadIdx.x % 4;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    float tile_max = NEG_INF;
#pragma unroll
    for (int n = 0; n < WKEYS / 8; n++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int j = jw + n * 8 + tig * 2 + e;
        const float x = j >= first[i] && j <= last[i] ? s[n][2 * i + e] * scale : NEG_INF;
        s[n][2 * i + e] = x;
        tile_max = fmaxf(tile_max, x);
      }
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(FULL_MASK, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(FULL_MASK, tile_max, 2));
    const float m_new = fmaxf(m[i], tile_max), c = exp_from(m[i], m_new);
    m[i] = m_new;
    l[i] *= c;
#pragma unroll
    for (int n = 0; n < DV / 8; n++) {
      o[n][2 * i] *= c;
      o[n][2 * i + 1] *= c;
    }
#pragma unroll
    for (int n = 0; n < WKEYS / 8; n++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const float p = exp_from(s[n][2 * i + e], m_new);
        s[n][2 * i + e] = p;
        l[i] += p;
      }
    }
  }
}

// o += P·V: P's accumulator tiles of keys 16kk..+7 and +8..+15, rounded to D, are the A fragment of one 16-key step;
// V's B fragments come from a transposing ldmatrix (two 8-dim tiles per load).
template <typename D, int DV, int WKEYS>
__device__ __forceinline__ void mma_add_pv(float (&o)[DV / 8][4], const float (&s)[WKEYS / 8][4], const typename D::T* vt) {
  constexpr int VS = DV + 8;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < WKEYS / 16; kk++) {
    unsigned a[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float* pair = &s[2 * kk + (i >> 1)][(i & 1) * 2];
      a[i] = (unsigned)D::store(pair[0]) | ((unsigned)D::store(pair[1]) << 16);
    }
#pragma unroll
    for (int n = 0; n < DV / 8; n += 2) {
      unsigned b[4];
      ldmatrix_x4_trans(b, vt + (kk * 16 + ((lane / 8) & 1) * 8 + lane % 8) * VS + n * 8 + (lane / 16) * 8);
      Mma<D>::run(o[n], a, b[0], b[1]);
      Mma<D>::run(o[n + 1], a, b[2], b[3]);
    }
  }
}

// ---- the block ------------------------------------------------------------------------------------------------

// Queues keys j0 .. j0 + KEY_TILE - 1 of this block's sequence and kv head into k_s / v_s (zeros past `end`).
template <typename E, int DH, int DV>
__device__ __forceinline__ void mma_load_tile(E* k_s, E* v_s, const E* k_seq, const E* v_seq, int k_stride, int v_stride, int j0, int end) {
  for (int c = threadIdx.x; c < KEY_TILE * (DH / 8); c += MMA_THREADS) {
    const int i = c / (DH / 8), part = c % (DH / 8), j = j0 + i;
    cp_async16(k_s + i * (DH + 8) + part * 8, k_seq + (u64)(j <= end ? j : 0) * k_stride + part * 8, j <= end);
  }
  for (int c = threadIdx.x; c < KEY_TILE * (DV / 8); c += MMA_THREADS) {
    const int i = c / (DV / 8), part = c % (DV / 8), j = j0 + i;
    cp_async16(v_s + i * (DV + 8) + part * 8, v_seq + (u64)(j <= end ? j : 0) * v_stride + part * 8, j <= end);
  }
  cp_async_commit();
}

// Each warp's rows (outputs, max, denominator) into shared memory, then the KW key groups of each row joined there:
// on return red_s [ROWS][DV + 8], m_s and l_s [ROWS] hold the block's rows. The ring is free (last barrier passed).
template <int DV, int KW>
__device__ __forceinline__ void mma_join(
    float* red_s, float* m_s, float* l_s, float* w_s, const float (&o)[DV / 8][4], const float (&m)[2], float (&l)[2]) {
  constexpr int ROWS = 16 * (MMA_WARPS / KW), RS = DV + 8;  // padded rows: the pair stores below are conflict-free
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gid = lane / 4, tig = lane % 4;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    l[i] += __shfl_xor_sync(FULL_MASK, l[i], 1);
    l[i] += __shfl_xor_sync(FULL_MASK, l[i], 2);
    const int row = warp * 16 + gid + 8 * i;
#pragma unroll
    for (int n = 0; n < DV / 8; n++) *(FloatPair*)&red_s[row * RS + n * 8 + tig * 2] = FloatPair{o[n][2 * i], o[n][2 * i + 1]};
    if (tig == 0) {
      m_s[row] = m[i];
      l_s[row] = l[i];
    }
  }
  __syncthreads();
  if constexpr (KW > 1) {
    // Block row r is row r % 16 of warp kw·RW + r / 16 in key group kw: slot kw·ROWS + r.
    for (int r = tid; r < ROWS; r += MMA_THREADS) {
      float M = NEG_INF, L = 0.0f;
      for (int g = 0; g < KW; g++) M = fmaxf(M, m_s[g * ROWS + r]);
      for (int g = 0; g < KW; g++) {
        const float w = exp_from(m_s[g * ROWS + r], M);
        w_s[g * ROWS + r] = w;
        L += l_s[g * ROWS + r] * w;
      }
      m_s[r] = M;
      l_s[r] = L;
    }
    __syncthreads();
    for (int i = tid; i < ROWS * DV; i += MMA_THREADS) {
      const int r = i / DV, d = i % DV;
      float a = 0.0f;
      for (int g = 0; g < KW; g++) a += red_s[(g * ROWS + r) * RS + d] * w_s[g * ROWS + r];
      red_s[r * RS + d] = a;
    }
    __syncthreads();
  }
}

template <typename D, int DH, int DV, int KW>
__device__ void attention_mma_rows(
    typename D::T* out, float* part_ml, float* part_acc, const typename D::T* q, const typename D::T* k,
    const typename D::T* v, const float* sinks, const int* positions, int B, int T, int S, int H, int Hkv, int window,
    int splits, float scale) {
  typedef typename D::T E;
  constexpr int RW = MMA_WARPS / KW, ROWS = 16 * RW, WKEYS = KEY_TILE / KW;
  constexpr int KS = DH + 8, VS = DV + 8;
  static_assert(DH % 32 == 0 && DV % 16 == 0 && WKEYS % 16 == 0, "tile shapes");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  E* k_s = (E*)smem_raw;                           // [2][KEY_TILE][KS] the ring
  E* v_s = k_s + 2 * KEY_TILE * KS;                // [2][KEY_TILE][VS]
  int* first_s = (int*)(v_s + 2 * KEY_TILE * VS);  // [ROWS]
  int* last_s = first_s + ROWS;                    // [ROWS]

  const int G = H / Hkv;
  const AttentionBlock blk = attention_block_coords(B, T, Hkv, G, ROWS, splits);
  const int tid = threadIdx.x, warp = tid / 32, gid = tid % 32 / 4;
  const int rw = warp % RW, kw = warp / RW;  // this warp's rows rw·16.., its key group
  unsigned qf[DH / 16][4];
  mma_load_q<D, DH>(qf, q, blk, rw * 16, T, H, G);  // first: its loads overlap the positions' below
  for (int r = tid; r < ROWS; r += MMA_THREADS) attention_row_keys(blk, r, positions, T, S, G, window, &first_s[r], &last_s[r]);
  __syncthreads();
  int start, end;
  attention_split_keys(first_s, last_s, blk.nrows, splits, blk.split, KEY_TILE, &start, &end);

  const int k_stride = Hkv * DH, v_stride = Hkv * DV;  // elements between cache rows
  const E* k_seq = k + (u64)blk.b * S * k_stride + (u64)blk.kvh * DH;
  const E* v_seq = v + (u64)blk.b * S * v_stride + (u64)blk.kvh * DV;
  float o[DV / 8][4];
#pragma unroll
  for (int n = 0; n < DV / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};  // per row; l is this lane's share of the sum
  const int tiles = start <= end ? ceil_div(end - start + 1, KEY_TILE) : 0;
  if (tiles > 0) mma_load_tile<E, DH, DV>(k_s, v_s, k_seq, v_seq, k_stride, v_stride, start, end);
  for (int it = 0; it < tiles; it++) {
    if (it + 1 < tiles) {  // the next tile loads while this one is used
      const int slot = (it + 1) & 1;
      mma_load_tile<E, DH, DV>(k_s + slot * KEY_TILE * KS, v_s + slot * KEY_TILE * VS, k_seq, v_seq, k_stride, v_stride,
                               start + (it + 1) * KEY_TILE, end);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const E* kt = k_s + ((it & 1) * KEY_TILE + kw * WKEYS) * KS;  // this warp's keys
    const E* vt = v_s + ((it & 1) * KEY_TILE + kw * WKEYS) * VS;
    // This lane's rows rw·16 + gid and + 8 see keys first..last (read here, not held in registers across the loop).
    const int row_first[2] = {first_s[rw * 16 + gid], first_s[rw * 16 + gid + 8]};
    const int row_last[2] = {min(last_s[rw * 16 + gid], end), min(last_s[rw * 16 + gid + 8], end)};
    float s[WKEYS / 8][4];
    mma_scores<D, DH, WKEYS>(s, qf, kt);
    mma_online_softmax<DV, WKEYS>(s, o, m, l, start + it * KEY_TILE + kw * WKEYS, row_first, row_last, scale);
    mma_add_pv<D, DV, WKEYS>(o, s, vt);
    __syncthreads();  // the next iteration's load refills this slot
  }

  float* red_s = (float*)smem_raw;                  // [MMA_WARPS · 16][DV + 8] (over the ring)
  float* m_s = red_s + MMA_WARPS * 16 * (DV + 8);  // [MMA_WARPS · 16]
  float* l_s = m_s + MMA_WARPS * 16;               // [MMA_WARPS · 16]
  float* w_s = l_s + MMA_WARPS * 16;               // [MMA_WARPS · 16]
  mma_join<DV, KW>(red_s, m_s, l_s, w_s, o, m, l);
  attention_write_rows<D>(out, part_ml, part_acc, sinks, blk, red_s, DV + 8, m_s, l_s, T, H, G, DV, splits);
}

// Instances: (Dh, Dv) of the models the fast path is for (GPT-OSS 64, Mixtral/Qwen 128, DeepSeek MLA 192/128), each
// with KW = 4 (≤ 16 rows a block) and KW = 1. MINB pins the blocks resident per SM (registers ≤ 65536 / (128 · MINB)),
// the occupancy attention.ts plans its splits with; it is what shared memory allows or what the registers need.
#define ATTENTION_MMA_KERNEL(name, D, DH, DV, KW, MINB)                                                             \
  extern "C" __global__ void __launch_bounds__(MMA_THREADS, MINB) attention_mma_##name##_##DH##_##DV##_##KW(        \
      D::T* out, float* part_ml, float* part_acc, const D::T* q, const D::T* k, const D::T* v, const float* sinks,  \
      const int* positions, int B, int T, int S, int H, int Hkv, int window, int splits, float scale) {             \
    attention_mma_rows<D, DH, DV, KW>(out, part_ml, part_acc, q, k, v, sinks, positions, B, T, S, H, Hkv, window,  \
                                      splits, scale);                                                               \
  }
#define ATTENTION_MMA_DIMS(name, D)            \
  ATTENTION_MMA_KERNEL(name, D, 64, 64, 4, 4)   \
  ATTENTION_MMA_KERNEL(name, D, 64, 64, 1, 3)   \
  ATTENTION_MMA_KERNEL(name, D, 128, 128, 4, 3) \
  ATTENTION_MMA_KERNEL(name, D, 128, 128, 1, 2) \
  ATTENTION_MMA_KERNEL(name, D, 192, 128, 4, 2) \
  ATTENTION_MMA_KERNEL(name, D, 192, 128, 1, 2)
ATTENTION_MMA_DIMS(bf16, BF16)
ATTENTION_MMA_DIMS(f16, F16)

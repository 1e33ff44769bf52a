// Causal grouped-query attention with an optional sliding window and optional per-head sinks, for f32, bf16 and
// f16 storage (q, k, v and out in one dtype), computed in f32: attention_<dtype>.
//
//   q [T, H, Dh], k [S, Hkv, Dh], v [S, Hkv, Dv] -> out [T, H, Dv]
//   T = query tokens, S = cache rows (only the first kvLength are read: rows past it hold stale data),
//   H = query heads, Hkv = key/value heads (query head h reads kv head h / (H / Hkv)), Dh = key dim, Dv = value dim.
//
// Query t sits at position p = queryStart + t and sees keys j with max(0, p - window + 1) <= j <= min(p, kvLength - 1)
// (the launcher passes window = queryStart + T when there is none, which reaches key 0 from every query). A sink
// (f32 [H], or null) is one more logit in the softmax's max and denominator that attends to nothing. A query that
// sees no key gets zeros, as the CPU reference gives.
//
// This is the simple, correct kernel, not the fast one (see ../NOTES.md for what a fast one needs): one block per
// (query token, head); keys in tiles of TILE with an online softmax, so shared memory holds q, one tile's scores and
// probabilities and the f32 output accumulator, whatever S is. Per tile, each warp computes the scores of some keys
// (lanes stride over Dh, a shuffle reduction sums them), every thread takes the tile's max, thread i turns score i
// into a probability, and each thread rescales and accumulates its own output dims (coalesced reads of v rows).
// Dynamic shared memory: (Dh + Dv + 2 * TILE) floats.
//
// The launcher half is attention.ts. Compiled by NVRTC; dtypes come from dtypes.cuh, which launch.ts inlines.

#include "dtypes.cuh"
typedef long long i64;

#define BLOCK 128
#define TILE 128
#define WARPS (BLOCK / 32)

// ---- dtypes: storage type, widening load, narrowing store ---------------------------------------------------

// exp(x - m), 0 where m is -inf (nothing seen yet, and no sink): never NaN from -inf - -inf.
#define NEG_INF __int_as_float(0xff800000u)
__device__ __forceinline__ float exp_from(float x, float m) { return m == NEG_INF ? 0.0f : expf(x - m); }

// ---- the kernel ------------------------------------------------------------------------------------------------
// Grid: T * H blocks of BLOCK threads, block b = (t, h) with t = b / H, h = b % H.
template <typename D>
__device__ void attention_block(
    typename D::T* out, const typename D::T* q, const typename D::T* k, const typename D::T* v, const float* sinks,
    u64 H, u64 Hkv, u64 Dh, u64 Dv, float scale, u64 queryStart, u64 kvLength, u64 window) {
  extern __shared__ float smem[];
  float* q_s = smem;              // [Dh]   this query, widened
  float* acc_s = q_s + Dh;        // [Dv]   unnormalised output, f32
  float* score_s = acc_s + Dv;    // [TILE] this tile's scaled scores
  float* prob_s = score_s + TILE; // [TILE] exp(score - running max)

  const u64 t = blockIdx.x / H, h = blockIdx.x % H;
  const u64 kvh = h / (H / Hkv);
  const unsigned tid = threadIdx.x, lane = tid % 32, warp = tid / 32;

  const i64 pos = (i64)(queryStart + t);
  const i64 first = pos - (i64)window + 1 > 0 ? pos - (i64)window + 1 : 0;
  const i64 last = pos < (i64)kvLength - 1 ? pos : (i64)kvLength - 1;  // may be < first: no key visible

  const typename D::T* q_row = q + (t * H + h) * Dh;
  for (u64 d = tid; d < Dh; d += BLOCK) q_s[d] = D::load(q_row[d]);
  for (u64 d = tid; d < Dv; d += BLOCK) acc_s[d] = 0.0f;
  // Running max and denominator (every thread keeps the same copy); a sink starts them at its logit.
  float m = sinks ? sinks[h] : NEG_INF;
  float l = sinks ? 1.0f : 0.0f;
  __syncthreads();

  const u64 k_stride = Hkv * Dh, v_stride = Hkv * Dv;  // elements between consecutive cache rows
  for (i64 j0 = first; j0 <= last; j0 += TILE) {
    const int n = (int)(last - j0 + 1 < TILE ? last - j0 + 1 : TILE);
    // 1. scores of keys j0 .. j0 + n - 1: warp w takes keys w, w + WARPS, ...
    for (int i = warp; i < n; i += WARPS) {
      const typename D::T* k_row = k + (u64)(j0 + i) * k_stride + kvh * Dh;
      float dot = 0.0f;
      for (u64 d = lane; d < Dh; d += 32) dot += q_s[d] * D::load(k_row[d]);
      for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if (lane == 0) score_s[i] = dot * scale;
    }
    __syncthreads();
    // 2. the new running max (each thread the same), and this tile's probabilities
    float m_new = m;
    for (int i = 0; i < n; i++) m_new = fmaxf(m_new, score_s[i]);
    const float rescale = exp_from(m, m_new);
    if ((int)tid < n) prob_s[tid] = exp_from(score_s[tid], m_new);
    __syncthreads();
    // 3. denominator and this thread's output dims, rescaled to the new max
    float tile_sum = 0.0f;
    for (int i = 0; i < n; i++) tile_sum += prob_s[i];
    l = l * rescale + tile_sum;
    m = m_new;
    for (u64 d = tid; d < Dv; d += BLOCK) {
      const typename D::T* v_col = v + (u64)j0 * v_stride + kvh * Dv + d;
      float a = acc_s[d] * rescale;
      for (int i = 0; i < n; i++) a += prob_s[i] * D::load(v_col[(u64)i * v_stride]);
      acc_s[d] = a;
    }
    // The next tile writes score_s (read above only before the last barrier) and then, after a barrier that every
    // thread reaches only when done with this step, prob_s: no barrier needed here.
  }

  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  typename D::T* out_row = out + (t * H + h) * Dv;
  for (u64 d = tid; d < Dv; d += BLOCK) out_row[d] = D::store(acc_s[d] * inv);
}

#define ATTENTION_KERNEL(name, D)                                                                             \
  extern "C" __global__ void __launch_bounds__(BLOCK) attention_##name(                                       \
      D::T* out, const D::T* q, const D::T* k, const D::T* v, const float* sinks, u64 H, u64 Hkv, u64 Dh,    \
      u64 Dv, float scale, u64 queryStart, u64 kvLength, u64 window) {                                        \
    attention_block<D>(out, q, k, v, sinks, H, Hkv, Dh, Dv, scale, queryStart, kvLength, window);            \
  }
ATTENTION_KERNEL(f32, F32)
ATTENTION_KERNEL(bf16, BF16)
ATTENTION_KERNEL(f16, F16)

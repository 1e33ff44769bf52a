// What every attention kernel shares (attention.cu on CUDA cores, attention-mma.cu on tensor cores): which rows and
// keys a block works on, read from the positions on the device, and how it writes them (finished output, or one
// split's partial for attention_merge). Inlined by launch.ts before NVRTC compiles, as dtypes.cuh is.
//
//   q [B, T, H, Dh], k [B, S, Hkv, Dh], v [B, S, Hkv, Dv], positions i32 [B, T], sinks f32 [H] or null
//   -> out [B, T, H, Dv]; partials: ml f32 [B·T·H, splits, 2] (running max, denominator), acc f32 [B·T·H, splits, Dv]
//   B = sequences, T = queries per sequence, S = cache rows per sequence, H = query heads, Hkv = key/value heads,
//   G = H / Hkv (query heads per kv head), Dh = key dim, Dv = value dim.
//
// Rows: a block works for one (sequence b, kv head) on a run of its "rows", the (token t, head g of the group) pairs
// numbered r = t·G + g, so the G query heads that read the same keys share each key and value the block loads. Row r
// is query (b, t) at p = positions[b, t] (clamped to [-1, S - 1], so no position can read outside k and v) and sees
// keys max(0, p - window + 1) ≤ j ≤ p (the launcher passes window = S for "no window"; 0 shows no key). The block's
// keys are the union of its rows' ranges, [lo, hi]; split s of `splits` takes the s-th run of whole tiles of it.
// Keys lo..hi are valid cache rows of sequence b (each is ≤ some row's position), so loading them is safe; keys past
// hi may hold anything and are never read.
//
// Grid: blocks = chunks × B × Hkv × splits (chunks = row runs per (b, kv head)), the split fastest and the row run
// slowest, the last run (latest tokens: the most keys under a causal mask) first. It depends only on the shape: the
// positions are read on the device, so a captured graph replays with new ones.
#pragma once

// exp(x - m), 0 where m is -inf (nothing seen yet, and no sink): never NaN from -inf - -inf.
#define NEG_INF __int_as_float(0xff800000u)
__device__ __forceinline__ float exp_from(float x, float m) { return m == NEG_INF ? 0.0f : expf(x - m); }

__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

struct AttentionBlock {
  int b, kvh, split;
  int row0;   // first row r of this block
  int nrows;  // rows it owns, ≤ rowsPerBlock
};

__device__ __forceinline__ AttentionBlock attention_block_coords(int B, int T, int Hkv, int G, int rowsPerBlock, int splits) {
  const int chunks = ceil_div(T * G, rowsPerBlock);
  int i = blockIdx.x;
  AttentionBlock blk;
  blk.split = i % splits;
  i /= splits;
  blk.kvh = i % Hkv;
  i /= Hkv;
  blk.b = i % B;
  blk.row0 = (chunks - 1 - i / B) * rowsPerBlock;
  blk.nrows = min(rowsPerBlock, T * G - blk.row0);
  return blk;
}

// Offset of row r's vector in q or out (row length n = Dh or Dv).
__device__ __forceinline__ u64 attention_row_offset(const AttentionBlock& blk, int r, int T, int H, int G, int n) {
  const int R = blk.row0 + r;
  return (((u64)blk.b * T + R / G) * H + (u64)blk.kvh * G + R % G) * n;
}

// Keys row r sees: first..last (empty when first > last). Rows past nrows see none.
__device__ __forceinline__ void attention_row_keys(
    const AttentionBlock& blk, int r, const int* positions, int T, int S, int G, int window, int* first, int* last) {
  if (r >= blk.nrows) {
    *first = 0;
    *last = -1;
    return;
  }
  int p = positions[(u64)blk.b * T + (blk.row0 + r) / G];
  p = min(max(p, -1), S - 1);
  *first = max(0, p - window + 1);
  *last = p;
}

// This split's keys [start, end] (end < start: none): the block's [lo, hi] over rows [0, n) of first/last, cut into
// `splits` runs of whole tiles.
__device__ __forceinline__ void attention_split_keys(
    const int* first, const int* last, int n, int splits, int split, int tile, int* start, int* end) {
  int lo = 0x7fffffff, hi = -1;
  for (int r = 0; r < n; r++) {
    if (first[r] <= last[r]) {
      lo = min(lo, first[r]);
      hi = max(hi, last[r]);
    }
  }
  if (hi < 0) {
    *start = 0;
    *end = -1;
    return;
  }
  const int per = ceil_div(ceil_div(hi - lo + 1, splits), tile) * tile;
  *start = lo + split * per;
  *end = min(hi, *start + per - 1);
}

// Writes the block's rows from shared memory: acc_s [nrows][stride] unnormalised f32 outputs, m_s and l_s [nrows]
// running max and denominator. One split: the sink joins the denominator, divide, round once into out. More: this
// split's partial, for attention_merge. Overwrites l_s; the block's threads must all call it (it has a barrier).
template <typename D>
__device__ void attention_write_rows(
    typename D::T* out, float* part_ml, float* part_acc, const float* sinks, const AttentionBlock& blk,
    const float* acc_s, int stride, const float* m_s, float* l_s, int T, int H, int G, int Dv, int splits) {
  for (int r = threadIdx.x; r < blk.nrows; r += blockDim.x) {
    const float m = m_s[r], l = l_s[r];
    if (splits == 1) {
      // out = acc · e^(m - M) / (l · e^(m - M) + e^(sink - M)), M = max(m, sink): l_s[r] becomes that factor.
      const float sink = sinks ? sinks[blk.kvh * G + (blk.row0 + r) % G] : NEG_INF;
      const float M = fmaxf(m, sink);
      const float c = exp_from(m, M);
      const float L = l * c + exp_from(sink, M);
      l_s[r] = L > 0.0f ? c / L : 0.0f;
    } else {
      const u64 slot = attention_row_offset(blk, r, T, H, G, 1) * splits + blk.split;
      part_ml[slot * 2] = m;
      part_ml[slot * 2 + 1] = l;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < blk.nrows * Dv; i += blockDim.x) {
    const int r = i / Dv, d = i % Dv;
    const float a = acc_s[r * stride + d];
    if (splits == 1) {
      out[attention_row_offset(blk, r, T, H, G, Dv) + d] = D::store(a * l_s[r]);
    } else {
      part_acc[(attention_row_offset(blk, r, T, H, G, 1) * splits + blk.split) * Dv + d] = a;
    }
  }
}

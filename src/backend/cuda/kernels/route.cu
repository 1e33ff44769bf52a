// The MoE router in one kernel, every RouterSpec variant: logits [T, E] → weights f32 [T, K] and expert ids
// i32 [T, K], best selection score first, ties to the lower expert id (as the CPU's topKIndices).
// Kernels route_<dtype> (dtype of the logits). One warp per token; the warp keeps the token's scores in shared
// memory. Launchers in moe.ts. Compiled by NVRTC; dtypes.cuh is inlined by launch.ts.
//
//   scoring 0 softmax-topk: softmax over E (f32), choose the top K, weight = probability
//   scoring 1 topk-softmax: choose the top K logits, weight = softmax over those K (bias, groups, normalize unused)
//   scoring 2 sigmoid:      score = σ(logit); choose by score + selectionBias; weight = the unbiased score
// then (0 and 2) groups: only experts of the `keep` groups with the highest sum of their two best choice scores;
// normalize: divide by the sum of the K weights (+1e-20 for sigmoid); every weight times `scale`.
// The final weights are formed in f64 from the f32 scores, in the CPU reference's order, and rounded once.
//
// Legend: T = tokens, E = experts, K = top-k (≤ 32), G = expert groups (0: none).

#include "dtypes.cuh"

#define SCORING_SOFTMAX_TOPK 0
#define SCORING_TOPK_SOFTMAX 1
#define SCORING_SIGMOID 2

// A candidate: value v of index e; e < 0 means none yet.
struct Candidate {
  float v;
  int e;
};

// The better of two candidates: the larger value, on equal values the lower index.
static __device__ __forceinline__ Candidate better(Candidate a, Candidate b) {
  if (a.e < 0) return b;
  if (b.e < 0) return a;
  return (b.v > a.v || (b.v == a.v && b.e < a.e)) ? b : a;
}

static __device__ __forceinline__ Candidate warp_best(Candidate c) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    Candidate other = {__shfl_xor_sync(FULL_MASK, c.v, offset), __shfl_xor_sync(FULL_MASK, c.e, offset)};
    c = better(c, other);
  }
  return c;
}

static __device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
  return v;
}

static __device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
  return v;
}

// The k best of vals[0..n) (k ≤ n, k ≤ 32), chosen one at a time like topKIndices; taken[0..n) must be 0 on entry
// and marks the chosen ones on return. Lane j (< k) gets the j-th chosen index, other lanes -1.
static __device__ int warp_top_k(const float* vals, int* taken, int n, int k, int lane) {
  int mine = -1;
  for (int j = 0; j < k; j++) {
    Candidate c = {0.0f, -1};
    for (int e = lane; e < n; e += 32) {
      if (!taken[e]) c = better(c, Candidate{vals[e], e});
    }
    c = warp_best(c);
    if (lane == 0) taken[c.e] = 1;
    __syncwarp();
    if (lane == j) mine = c.e;
  }
  return mine;
}

// Group-limited selection: choice of experts outside the `keep` best groups becomes -inf. A group's score is the
// sum of its two best choice scores (f32, as the CPU's Float32Array). groupScore and groupTaken hold G entries.
static __device__ void mask_groups(float* choice, float* groupScore, int* groupTaken, int E, int G, int keep, int lane) {
  const int size = E / G;
  for (int g = lane; g < G; g += 32) {
    const float* member = choice + g * size;
    int first = -1, second = -1;
    for (int i = 0; i < size; i++) {
      if (first < 0 || member[i] > member[first]) {
        second = first;
        first = i;
      } else if (second < 0 || member[i] > member[second]) {
        second = i;
      }
    }
    groupScore[g] = member[first] + member[second];
    groupTaken[g] = 0;
  }
  __syncwarp();
  warp_top_k(groupScore, groupTaken, G, keep, lane);  // groupTaken now marks the kept groups
  __syncwarp();
  for (int e = lane; e < E; e += 32) {
    if (!groupTaken[e / size]) choice[e] = -__int_as_float(0x7f800000);
  }
  __syncwarp();
}

// Lane j (< K) turns its chosen expert's score into its final weight; every lane returns a value, used by j < K.
// The sums run over j in order in f64, as the CPU reference adds them; picked: K floats of the warp's shared memory.
static __device__ float final_weight(float chosenScore, float* picked, int K, int scoring, int normalize, double scale,
                                     int lane) {
  double w;
  if (scoring == SCORING_TOPK_SOFTMAX) {
    const float top = __shfl_sync(FULL_MASK, chosenScore, 0);  // the first chosen is the largest logit
    const float ex = lane < K ? (float)exp((double)chosenScore - (double)top) : 0.0f;
    if (lane < K) picked[lane] = ex;
    __syncwarp();
    double sum = 0.0;
    for (int j = 0; j < K; j++) sum += (double)picked[j];
    w = (double)(float)((double)ex / sum);
  } else {
    w = (double)chosenScore;
    if (normalize) {
      if (lane < K) picked[lane] = chosenScore;
      __syncwarp();
      double sum = 0.0;
      for (int j = 0; j < K; j++) sum += (double)picked[j];
      if (scoring == SCORING_SIGMOID) sum += 1e-20;
      w = w / sum;
    }
  }
  __syncwarp();  // picked may be written again for the warp's next token
  return (float)(w * scale);
}

// Scores of one token into score[E] and choice[E] (choice = score + bias, what experts are chosen by).
template <class D>
static __device__ void token_scores(const typename D::T* row, const float* bias, float* score, float* choice, int E, int scoring, int lane) {
  if (scoring == SCORING_SOFTMAX_TOPK) {
    float m = -__int_as_float(0x7f800000);
    for (int e = lane; e < E; e += 32) m = fmaxf(m, D::load(row[e]));
    m = warp_max(m);
    float s = 0.0f;
    for (int e = lane; e < E; e += 32) {
      const float ex = expf(D::load(row[e]) - m);
      score[e] = ex;
      s += ex;
    }
    s = warp_sum(s);
    for (int e = lane; e < E; e += 32) score[e] = score[e] / s;
  } else if (scoring == SCORING_SIGMOID) {
    for (int e = lane; e < E; e += 32) score[e] = 1.0f / (1.0f + expf(-D::load(row[e])));
  } else {
    for (int e = lane; e < E; e += 32) score[e] = D::load(row[e]);
  }
  const bool biased = bias != 0 && scoring != SCORING_TOPK_SOFTMAX;
  for (int e = lane; e < E; e += 32) choice[e] = biased ? score[e] + bias[e] : score[e];
  __syncwarp();
}

// The general kernel (any E the launcher allows): scores in shared memory, K rounds of warp_top_k.
// Shared memory per warp: score[E], choice[E], groupScore[G], picked[32] (floats), then taken[E], groupTaken[G] (ints).
template <class D>
static __device__ void route(float* weights, int* experts, const typename D::T* logits, const float* bias, u64 T,
                             int E, int K, int scoring, int G, int keep, int normalize, double scale) {
  extern __shared__ float route_shared[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float* score = route_shared + (u64)warp * (3 * E + 2 * G + 32);
  float* choice = score + E;
  float* groupScore = choice + E;
  float* picked = groupScore + G;
  int* taken = (int*)(picked + 32);
  int* groupTaken = taken + E;
  for (u64 t = (u64)blockIdx.x * warps + warp; t < T; t += (u64)gridDim.x * warps) {
    token_scores<D>(logits + t * E, bias, score, choice, E, scoring, lane);
    if (G > 0 && scoring != SCORING_TOPK_SOFTMAX) mask_groups(choice, groupScore, groupTaken, E, G, keep, lane);
    for (int e = lane; e < E; e += 32) taken[e] = 0;
    __syncwarp();
    const int chosen = warp_top_k(choice, taken, E, K, lane);
    const float chosenScore = lane < K ? score[chosen] : 0.0f;
    const float w = final_weight(chosenScore, picked, K, scoring, normalize, scale, lane);
    if (lane < K) {
      weights[t * K + lane] = w;
      experts[t * K + lane] = chosen;
    }
    __syncwarp();
  }
}

// ---- few experts (E ≤ 32 · V): the token's values in registers ----------------------------------------------------
// Lane l holds experts l + 32 i (i < V), the order the general kernel walks them in, so scores and sums round the
// same way. Top-k: each lane sorts its candidates (best first), then each of K rounds takes the warp's best head (two
// warp reductions over 32-bit keys: the largest value key, then the lowest expert id holding it) and its lane moves
// to its next candidate.

// A 32-bit key that orders like the float (larger value, larger key); -0 ties +0 as in float comparison; NaN sorts
// below every number (0; the CPU's loop keeps a NaN only when it comes first). Keys of real candidates are ≥ 0 and
// empty places hold 0 with id 0xffffffff, so they lose every tie.
static __device__ __forceinline__ unsigned order_key(float v) {
  if (v != v) return 0u;
  const unsigned b = __float_as_uint(v == 0.0f ? 0.0f : v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static __device__ __forceinline__ unsigned warp_max_u32(unsigned v) {
#if __CUDA_ARCH__ >= 800
  unsigned r;
  asm("redux.sync.max.u32 %0, %1, 0xffffffff;" : "=r"(r) : "r"(v));
  return r;
#else
  for (int offset = 16; offset > 0; offset >>= 1) v = max(v, __shfl_xor_sync(FULL_MASK, v, offset));
  return v;
#endif
}

static __device__ __forceinline__ unsigned warp_min_u32(unsigned v) {
#if __CUDA_ARCH__ >= 800
  unsigned r;
  asm("redux.sync.min.u32 %0, %1, 0xffffffff;" : "=r"(r) : "r"(v));
  return r;
#else
  for (int offset = 16; offset > 0; offset >>= 1) v = min(v, __shfl_xor_sync(FULL_MASK, v, offset));
  return v;
#endif
}

// Lane j (< k) gets the j-th best of the warp's candidates (key[i], id[i]), each lane's sorted best first; other
// lanes get 0xffffffff. Ties go to the lower id, as topKIndices.
template <int V>
static __device__ __forceinline__ unsigned warp_top_k_sorted(unsigned (&key)[V], unsigned (&id)[V], int k, int lane) {
  unsigned mine = 0xffffffffu;
  for (int j = 0; j < k; j++) {
    const unsigned best = warp_max_u32(key[0]);
    const unsigned who = warp_min_u32(key[0] == best ? id[0] : 0xffffffffu);
    if (lane == j) mine = who;
    if (id[0] == who) {
#pragma unroll
      for (int i = 0; i + 1 < V; i++) {
        key[i] = key[i + 1];
        id[i] = id[i + 1];
      }
      key[V - 1] = 0;
      id[V - 1] = 0xffffffffu;
    }
  }
  return mine;
}

// Sorts a lane's V candidates best first (larger key; on equal keys the earlier, i.e. lower, id: the sort is stable).
template <int V>
static __device__ __forceinline__ void sort_candidates(unsigned (&key)[V], unsigned (&id)[V]) {
#pragma unroll
  for (int pass = 0; pass < V; pass++) {
#pragma unroll
    for (int i = pass & 1; i + 1 < V; i += 2) {
      if (key[i] < key[i + 1]) {
        const unsigned k = key[i], d = id[i];
        key[i] = key[i + 1];
        id[i] = id[i + 1];
        key[i + 1] = k;
        id[i + 1] = d;
      }
    }
  }
}

// Shared memory per warp: score[E], picked[32], and with groups choice[E], groupScore[G] (floats), groupTaken[G] (ints).
template <class D, int V>
static __device__ void route_small(float* weights, int* experts, const typename D::T* logits, const float* bias, u64 T,
                                   int E, int K, int scoring, int G, int keep, int normalize, double scale) {
  extern __shared__ float route_shared[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const bool grouped = G > 0 && scoring != SCORING_TOPK_SOFTMAX;
  float* score = route_shared + (u64)warp * (E + 32 + (grouped ? E + 2 * G : 0));
  float* picked = score + E;
  float* choice = picked + 32;
  float* groupScore = choice + E;
  int* groupTaken = (int*)(groupScore + G);
  const bool biased = bias != 0 && scoring != SCORING_TOPK_SOFTMAX;
  for (u64 t = (u64)blockIdx.x * warps + warp; t < T; t += (u64)gridDim.x * warps) {
    const typename D::T* row = logits + t * E;
    float v[V];
#pragma unroll
    for (int i = 0; i < V; i++) v[i] = lane + 32 * i < E ? D::load(row[lane + 32 * i]) : 0.0f;
    if (scoring == SCORING_SOFTMAX_TOPK) {
      float m = -__int_as_float(0x7f800000);
#pragma unroll
      for (int i = 0; i < V; i++) if (lane + 32 * i < E) m = fmaxf(m, v[i]);
      m = warp_max(m);
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < V; i++) {
        if (lane + 32 * i < E) {
          v[i] = expf(v[i] - m);
          s += v[i];
        }
      }
      s = warp_sum(s);
#pragma unroll
      for (int i = 0; i < V; i++) v[i] = __fdiv_rn(v[i], s);
    } else if (scoring == SCORING_SIGMOID) {
#pragma unroll
      for (int i = 0; i < V; i++) v[i] = 1.0f / (1.0f + expf(-v[i]));
    }
    unsigned key[V], id[V];
#pragma unroll
    for (int i = 0; i < V; i++) {
      const int e = lane + 32 * i;
      if (e < E) score[e] = v[i];
      const float c = biased && e < E ? v[i] + bias[e] : v[i];
      if (grouped && e < E) choice[e] = c;
      key[i] = e < E ? order_key(c) : 0u;
      id[i] = e < E ? (unsigned)e : 0xffffffffu;
    }
    __syncwarp();
    if (grouped) {
      mask_groups(choice, groupScore, groupTaken, E, G, keep, lane);
#pragma unroll
      for (int i = 0; i < V; i++) if (lane + 32 * i < E) key[i] = order_key(choice[lane + 32 * i]);
    }
    sort_candidates<V>(key, id);
    const unsigned chosen = warp_top_k_sorted<V>(key, id, K, lane);
    const float chosenScore = lane < K ? score[chosen] : 0.0f;
    const float w = final_weight(chosenScore, picked, K, scoring, normalize, scale, lane);
    if (lane < K) {
      weights[t * K + lane] = w;
      experts[t * K + lane] = (int)chosen;
    }
    __syncwarp();  // score is written again for the warp's next token
  }
}

#define ROUTE_KERNEL(name, D)                                                                                   \
  extern "C" __global__ void route_##name(float* weights, int* experts, const D::T* logits, const float* bias,   \
                                          u64 T, int E, int K, int scoring, int G, int keep, int normalize,      \
                                          double scale) {                                                        \
    route<D>(weights, experts, logits, bias, T, E, K, scoring, G, keep, normalize, scale);                       \
  }
ROUTE_KERNEL(f32, F32)
ROUTE_KERNEL(bf16, BF16)
ROUTE_KERNEL(f16, F16)

// route_small_<dtype>_<V>: E ≤ 32 · V.
#define ROUTE_SMALL_KERNEL(name, D, V)                                                                          \
  extern "C" __global__ void route_small_##name##_##V(float* weights, int* experts, const D::T* logits,         \
                                                     const float* bias, u64 T, int E, int K, int scoring, int G, \
                                                     int keep, int normalize, double scale) {                    \
    route_small<D, V>(weights, experts, logits, bias, T, E, K, scoring, G, keep, normalize, scale);              \
  }
#define ROUTE_SMALL_KERNELS(name, D) \
  ROUTE_SMALL_KERNEL(name, D, 1) ROUTE_SMALL_KERNEL(name, D, 2) ROUTE_SMALL_KERNEL(name, D, 4) ROUTE_SMALL_KERNEL(name, D, 8)
FOR_EACH_DTYPE(ROUTE_SMALL_KERNELS)

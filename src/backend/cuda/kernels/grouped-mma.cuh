// Grouped linear on tensor cores for many rows (prefill): rows [offsets[e], offsets[e+1]) of x [N, Kin] times
// w[e] [Nout, Kin]ᵀ (+ bias[e] [Nout], f32) → out [N, Nout], f32 accumulation, rounded once: the contract of
// grouped_linear in grouped.cu, for bf16 and f16 storage (f32 stays on CUDA cores there: TF32 would break its
// tolerance). moe.ts takes this path when Kin % 8 == 0 and x, w are 16-byte aligned (every row start then is).
// This header holds the kernel template; grouped-mma.cu instantiates the linear kernels, grouped-mma-glu.cu the
// SwiGLU-fused ones (two modules, so a first prefill compiles only what it runs: NVRTC takes seconds for these).
// launch.ts inlines this header, dtypes.cuh and mma-ptx.cuh (the PTX wrappers) before NVRTC compiles.
//
// Kernels grouped_mma_<dtype>_<BM>, BM = 128 or 64 rows a tile. A block of 4 warps computes one BM × 128 output tile
// of one expert with mma.sync m16n8k16 (Ampere-style, sm_80+): each warp a (BM/2) × 64 quarter. K runs in steps of
// 64: tiles of x and w are copied by cp.async (16 bytes per copy, zero-filled past the expert's rows, past Nout and
// past Kin) into a STAGES-deep ring in dynamic shared memory, read by ldmatrix. Each tile row is 64 elements = 128
// bytes = 8 chunks of 16 bytes; chunk c of row r is stored at chunk c ^ (r % 8), so the 8 rows an ldmatrix reads
// (and the 8 chunks a cp.async pass writes) fall in 8 different bank groups. The epilogue adds the bias, rounds,
// stages the tile in shared memory and writes 16-byte rows (element stores when Nout % 8 != 0).
// grouped_mma_<silu|clamped>_<dtype>_<BM> fuse the MoE's SwiGLU into the first GEMM (see grouped_mma below).
//
// Tiles: each expert's rows are cut into row tiles of BM from its first row (a tile never holds two experts; rows
// past the expert's end are zero-filled and never stored). The host knows only N and E, so the grid has
// (floor(N / BM) + min(E, N)) × colTiles blocks, enough for any split; a block finds its tile from the offsets on
// the device (locate_mma_tile) and blocks past the last tile return at once. Within an expert, blocks run in groups
// of GROUP_ROWS row tiles swept column by column, so the weight columns being read stay in L2 for the whole group.
//
// Legend: N = routed rows, E = experts, Kin = input features, Nout = output features, BM × BN × BK = block tile.

#pragma once
#include "dtypes.cuh"
#include "mma-ptx.cuh"

#define MMA_THREADS 128    // 4 warps: 2 along M × 2 along N
#define MMA_BN 128
#define MMA_BK 64          // one 128-byte row of bf16/f16 per tile row and stage
#define MMA_ROW_BYTES 128
#define GROUP_ROWS 8       // row tiles of one expert swept together, column tile by column tile
#define SCAN_PER_LANE 8    // experts a lane reads per round of locate_mma_tile (256 a round)

// 16 bytes, for the epilogue's vector copies.
struct alignas(16) Chunk16 {
  unsigned x, y, z, w;
};

// A block's tile: its expert (-1: none), first row, the end of the expert's rows, and its column tile.
struct MmaSpot {
  int expert;
  unsigned colTile;
  u64 row0;
  u64 rowEnd;
};

// Clamped rows [begin, end) of expert e (empty for e ≥ E): offsets clamped to [0, N] and end ≥ begin, so bad
// offsets cannot reach outside x or out (as grouped.cu's expert_rows).
static __device__ __forceinline__ void mma_expert_rows(u64* begin, u64* end, const int* offsets, int E, u64 N, int e) {
  *begin = *end = 0;
  if (e >= E) return;
  const int lo = offsets[e], hi = offsets[e + 1];
  *begin = lo < 0 ? 0 : ((u64)lo > N ? N : (u64)lo);
  *end = hi < 0 ? 0 : ((u64)hi > N ? N : (u64)hi);
  if (*end < *begin) *end = *begin;
}

// Run by one warp: the tile of block `block`. Row tiles are numbered expert after expert (ceil(rows / BM) each),
// and block b serves row tile b / colTiles of that order. A lane reads SCAN_PER_LANE consecutive experts' offsets
// (all loads issued before any is used: one round trip to L2 per 256 experts), the warp scans the lanes' tile
// counts, and the lane holding the row tile finds its expert and places the block within the expert's
// rowTiles × colTiles tiles: groups of GROUP_ROWS row tiles, each group swept column tile by column tile.
template <int BM>
static __device__ void locate_mma_tile(MmaSpot* spot, const int* offsets, int E, u64 N, unsigned block,
                                       unsigned colTiles) {
  const int lane = threadIdx.x % 32;
  const unsigned rowTile = block / colTiles;
  unsigned carry = 0;  // row tiles of the experts of earlier rounds
  for (int base = 0; base < E; base += 32 * SCAN_PER_LANE) {
    const int first = base + lane * SCAN_PER_LANE;
    u64 begin[SCAN_PER_LANE], end[SCAN_PER_LANE];
    unsigned tiles[SCAN_PER_LANE], laneTiles = 0;
#pragma unroll
    for (int j = 0; j < SCAN_PER_LANE; j++) mma_expert_rows(&begin[j], &end[j], offsets, E, N, first + j);
#pragma unroll
    for (int j = 0; j < SCAN_PER_LANE; j++) {
      tiles[j] = (unsigned)((end[j] - begin[j] + BM - 1) / BM);
      laneTiles += tiles[j];
    }
    unsigned inclusive = laneTiles;
    for (int d = 1; d < 32; d <<= 1) {
      const unsigned up = __shfl_up_sync(FULL_MASK, inclusive, d);
      if (lane >= d) inclusive += up;
    }
    const unsigned before = carry + inclusive - laneTiles;
    const bool hit = rowTile >= before && rowTile - before < laneTiles;
    if (hit) {
      unsigned expertFirst = before;  // the expert's first row tile in the global order
      bool found = false;
#pragma unroll
      for (int j = 0; j < SCAN_PER_LANE; j++) {
        if (!found && rowTile - expertFirst < tiles[j]) {
          found = true;
          const unsigned rows = tiles[j];  // the expert's row tiles
          const unsigned local = block - expertFirst * colTiles;
          const unsigned group = local / (GROUP_ROWS * colTiles);
          const unsigned groupRows = rows - group * GROUP_ROWS < GROUP_ROWS ? rows - group * GROUP_ROWS : GROUP_ROWS;
          const unsigned within = local - group * GROUP_ROWS * colTiles;
          spot->expert = first + j;
          spot->colTile = within / groupRows;
          spot->row0 = begin[j] + (u64)(group * GROUP_ROWS + within % groupRows) * BM;
          spot->rowEnd = end[j];
        }
        if (!found) expertFirst += tiles[j];
      }
    }
    if (__ballot_sync(FULL_MASK, hit)) return;
    carry += __shfl_sync(FULL_MASK, inclusive, 31);
  }
  if (lane == 0) spot->expert = -1;
}

// What the epilogue makes of the accumulators.
#define GLU_NONE 0     // the linear output itself
#define GLU_SILU 1     // SwiGLU: silu(gate) · up, as silu_mul in norm-rope.cu
#define GLU_CLAMPED 2  // GPT-OSS: (clamp(up, ±limit) + 1) · g σ(alpha g), g = min(gate, limit), as clamped_glu

static __device__ __forceinline__ float glu(int kind, float gate, float up, float alpha, float limit) {
  if (kind == GLU_SILU) return __fmul_rn(__fdiv_rn(gate, 1.0f + expf(-gate)), up);
  const float g = gate > limit ? limit : gate, u = up < -limit ? -limit : (up > limit ? limit : up);
  return __fmul_rn(u + 1.0f, __fdiv_rn(g, 1.0f + expf(__fmul_rn(-alpha, g))));
}

// One BM × OUT_BN output tile. GLU_NONE: out [N, Nout], the tile's 128 B rows are weight rows col0 .. col0 + 127.
// Otherwise w[e] holds F = Nout / 2 gate rows then F up rows, out is [N, F], a tile makes 64 output columns
// col0 .. col0 + 63, and B row r is gate row col0 + 8(r / 16) + r % 16 for r % 16 < 8, else the up row of the same
// column: each warp's n8 tiles 2q and 2q + 1 then hold the gate and up sums of the same 8 columns, in the same
// accumulator slots, and the epilogue combines them in registers (in f32: the unfused path rounds gate and up to
// the storage dtype first).
template <class D, int BM, int STAGES, int GLU>
static __device__ void grouped_mma(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                   const float* bias, const int* offsets, int E, u64 N, u64 Nout, u64 Kin,
                                   unsigned colTiles, float alpha, float limit) {
  typedef typename D::T T;
  constexpr int OUT_BN = GLU == GLU_NONE ? MMA_BN : MMA_BN / 2;  // output columns a tile
  constexpr int OUT_STRIDE = OUT_BN + 8;                        // staged output row (+16 bytes: no bank conflicts)
  constexpr int WTM = BM / 2, WTN = MMA_BN / 2;  // warp tile
  constexpr int MT = WTM / 16, NT = WTN / 8;     // m16 and n8 tiles a warp
  constexpr int ROWS_PER_PASS = MMA_THREADS / 8; // tile rows one cp.async pass fills (8 chunks a row)
  constexpr int A_BYTES = BM * MMA_ROW_BYTES, B_BYTES = MMA_BN * MMA_ROW_BYTES, STAGE_BYTES = A_BYTES + B_BYTES;
  static_assert(BM * OUT_STRIDE * 2 <= STAGES * STAGE_BYTES, "the staged output tile must fit the ring");
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ MmaSpot spot;
  if (threadIdx.x < 32) locate_mma_tile<BM>(&spot, offsets, E, N, blockIdx.x, colTiles);
  __syncthreads();
  const int e = spot.expert;
  if (e < 0) return;  // block-uniform: no barrier is skipped by part of the block
  const u64 ffn = Nout / 2, outWidth = GLU == GLU_NONE ? Nout : ffn;
  const u64 row0 = spot.row0, rowEnd = spot.rowEnd, col0 = (u64)spot.colTile * OUT_BN;
  const T* we = w + (u64)e * Nout * Kin;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const unsigned ring = smem_address(smem);

  // Copies: thread tid always moves chunk tid % 8 of tile rows passRow + ROWS_PER_PASS·q (q = pass). For B those
  // are weight rows bRow0 + bStep·q, real while bFirst + bStep·q < colsHere.
  const int chunk = tid % 8, passRow = tid / 8;
  const unsigned copyOffset = passRow * MMA_ROW_BYTES + ((chunk ^ (passRow % 8)) << 4);
  const u64 rowsLeft = rowEnd - row0;  // ≥ 1
  const int rowsHere = rowsLeft < (u64)BM ? (int)rowsLeft : BM;
  const int colsHere = outWidth - col0 < (u64)OUT_BN ? (int)(outWidth - col0) : OUT_BN;
  const int bFirst = GLU == GLU_NONE ? passRow : passRow % 8, bStep = GLU == GLU_NONE ? 16 : 8;
  const u64 bRow0 = GLU == GLU_NONE ? col0 + passRow : (passRow < 8 ? 0 : ffn) + col0 + passRow % 8;
  const T* aSrc = x + (row0 + passRow) * Kin + chunk * 8;
  const T* bSrc = we + bRow0 * Kin + chunk * 8;
  auto load_stage = [&](int stage, u64 kTile) {
    const u64 k = kTile * MMA_BK;
    const bool kOk = k + chunk * 8 < Kin;
    const unsigned aDst = ring + stage * STAGE_BYTES + copyOffset;
#pragma unroll
    for (int q = 0; q < BM / ROWS_PER_PASS; q++) {
      const bool ok = kOk && passRow + ROWS_PER_PASS * q < rowsHere;
      cp_async16(aDst + q * ROWS_PER_PASS * MMA_ROW_BYTES, ok ? aSrc + (u64)(ROWS_PER_PASS * q) * Kin + k : x, ok);
    }
    const unsigned bDst = ring + stage * STAGE_BYTES + A_BYTES + copyOffset;
#pragma unroll
    for (int q = 0; q < MMA_BN / ROWS_PER_PASS; q++) {
      const bool ok = kOk && bFirst + bStep * q < colsHere;
      cp_async16(bDst + q * ROWS_PER_PASS * MMA_ROW_BYTES, ok ? bSrc + (u64)(bStep * q) * Kin + k : w, ok);
    }
  };

  // Fragment reads. A (row-major m16×k16 at rows wm·WTM + 16mt): lane l gives the address of row l % 16, k chunk
  // 2kk + l / 16 (matrices: rows 0-7 | 8-15 × k 0-7 | 8-15 → a0..a3). B (w rows = n, k contiguous: mma's "col"):
  // lane l gives row n = l % 8 + 8(l / 16) of the n16 pair, k chunk 2kk + (l / 8) % 2, so r0, r1 are b0, b1 of
  // the first n8 tile and r2, r3 those of the second. Every one of those rows is ≡ l (mod 8): the swizzle is l % 8.
  const unsigned aRead = (wm * WTM + lane % 16) * MMA_ROW_BYTES, aChunk = lane / 16;
  const unsigned bRead = (wn * WTN + lane % 8 + 8 * (lane / 16)) * MMA_ROW_BYTES, bChunk = (lane / 8) % 2;
  const unsigned swizzle = lane % 8;
  // m16 tiles of this warp holding rows of the expert; the others are skipped (their rows are never stored).
  const int activeMt = rowsHere - wm * WTM <= 0 ? 0 : (rowsHere - wm * WTM + 15) / 16;

  float acc[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[mt][nt][i] = 0.0f;

  const u64 kTiles = (Kin + MMA_BK - 1) / MMA_BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if ((u64)s < kTiles) load_stage(s, s);
    cp_async_commit();
  }
  for (u64 kt = 0; kt < kTiles; kt++) {
    cp_async_wait<STAGES - 2>();  // this thread's copies of tile kt are done ...
    __syncthreads();              // ... and everyone's; stage (kt - 1) % STAGES is free again
    const u64 next = kt + STAGES - 1;
    if (next < kTiles) load_stage((int)(next % STAGES), next);
    cp_async_commit();  // possibly empty: keeps one group per tile for the wait above
    const unsigned aStage = ring + (unsigned)(kt % STAGES) * STAGE_BYTES, bStage = aStage + A_BYTES;
#pragma unroll
    for (int kk = 0; kk < MMA_BK / 16; kk++) {
      unsigned af[MT][4], bf[NT / 2][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
        if (mt < activeMt)
          ldmatrix_x4(af[mt], aStage + aRead + mt * 16 * MMA_ROW_BYTES + (((2 * kk + aChunk) ^ swizzle) << 4));
#pragma unroll
      for (int np = 0; np < NT / 2; np++)
        ldmatrix_x4(bf[np], bStage + bRead + np * 16 * MMA_ROW_BYTES + (((2 * kk + bChunk) ^ swizzle) << 4));
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
        if (mt < activeMt)
#pragma unroll
          for (int nt = 0; nt < NT; nt++) Mma<D>::run(acc[mt][nt], af[mt], bf[nt / 2][2 * (nt % 2)], bf[nt / 2][2 * (nt % 2) + 1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is free: stage the output tile in it

  // Accumulator c_i of tile (mt, nt): row 16mt + l/4 + 8(i/2), column 8nt + 2(l%4) + i%2 of the warp tile.
  T* staged = (T*)smem;  // [BM][OUT_STRIDE]
  const int g = lane / 4, t4 = lane % 4;
  const float* be = bias == 0 ? 0 : bias + (u64)e * Nout;
#pragma unroll
  for (int nt = 0; nt < (GLU == GLU_NONE ? NT : NT / 2); nt++) {
    // Output column of c_0 within the tile; GLU: gate sums in n8 tile 2nt, up sums in 2nt + 1.
    const int col = GLU == GLU_NONE ? wn * WTN + nt * 8 + 2 * t4 : wn * (WTN / 2) + nt * 8 + 2 * t4;
    float b[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};  // [gate or plain, up][column col, col + 1]
    for (int j = 0; j < 2; j++)
      if (be != 0 && col + j < colsHere) {
        b[0][j] = be[col0 + col + j];
        if (GLU != GLU_NONE) b[1][j] = be[ffn + col0 + col + j];
      }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int half = 0; half < 2; half++) {
        const int row = wm * WTM + mt * 16 + g + 8 * half;
        float v[2];
        for (int j = 0; j < 2; j++) {
          if (GLU == GLU_NONE) v[j] = acc[mt][nt][2 * half + j] + b[0][j];
          else v[j] = glu(GLU, acc[mt][2 * nt][2 * half + j] + b[0][j], acc[mt][2 * nt + 1][2 * half + j] + b[1][j], alpha, limit);
        }
        const unsigned lo = D::store(v[0]), hi = D::store(v[1]);
        *(unsigned*)&staged[row * OUT_STRIDE + col] = lo | (hi << 16);
      }
  }
  __syncthreads();
  // OUT_BN / 8 chunks of 8 elements a row; thread tid writes chunks tid + MMA_THREADS·q.
  const bool vectorOut = outWidth % 8 == 0 && ((unsigned long long)out & 15) == 0;
#pragma unroll
  for (int q = 0; q < BM * (OUT_BN / 8) / MMA_THREADS; q++) {
    const int i = tid + MMA_THREADS * q, row = i / (OUT_BN / 8), col = (i % (OUT_BN / 8)) * 8;
    if (row >= rowsHere || col >= colsHere) continue;
    T* dst = out + (row0 + row) * outWidth + col0 + col;
    const T* src = &staged[row * OUT_STRIDE + col];
    if (vectorOut) {
      *(Chunk16*)dst = *(const Chunk16*)src;
    } else {
      for (int j = 0; j < 8 && col + j < colsHere; j++) dst[j] = src[j];
    }
  }
}

// Dynamic shared memory of each kernel: STAGES × (BM + 128) rows × 128 bytes (moe.ts mirrors these). All take
// the same arguments; alpha and limit are read by the clamped kernels only.
#define GROUPED_MMA_KERNEL(name, D, BM, STAGES, GLU)                                                              \
  extern "C" __global__ void __launch_bounds__(MMA_THREADS, 2) grouped_mma_##name##_##BM(                        \
      D::T* out, const D::T* x, const D::T* w, const float* bias, const int* offsets, int E, u64 N, u64 Nout,    \
      u64 Kin, unsigned colTiles, float alpha, float limit) {                                                     \
    grouped_mma<D, BM, STAGES, GLU>(out, x, w, bias, offsets, E, N, Nout, Kin, colTiles, alpha, limit);          \
  }

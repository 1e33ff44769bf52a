// Grouped linear on Hopper's warpgroup tensor cores (wgmma, sm_90a only): the contract of grouped-mma.cuh (rows
// [offsets[e], offsets[e+1]) of x [N, Kin] times w[e] [Nout, Kin]ᵀ (+ f32 bias[e]) → out [N, Nout], f32
// accumulation, rounded once; bf16/f16; Kin % 8 == 0, x and w 16-byte aligned) and the same tiles: row tiles of 128
// from each expert's first row, found on the device by grouped-mma.cuh's locate_mma_tile. grouped-wgmma.cu
// instantiates the linear kernels, grouped-wgmma-glu.cu the SwiGLU-fused ones (the gate/up row interleave of
// grouped_mma). launch.ts inlines the headers; the module is built for sm_90a (KernelFile.archSpecific).
//
// Block: 256 threads = 2 warpgroups (WG 0, 1), one 128 × BN output tile (BN = 256 or 128), K in steps of 64.
//   WG g computes rows 64g .. 64g + 63 × all BN columns: per k step of 64, 4 × wgmma.m64nBNk16 (A and B both read
//   from shared memory through descriptors, f32 accumulators: BN / 2 registers a thread).
//   Accumulator d[4j + 2h + v] of thread t (warp w = (t / 32) % 4, lane l) is row 64g + 16w + l/4 + 8h, column
//   8j + 2(l % 4) + v of the tile: mma.m16n8's layout, one n8 tile j after another.
// Shared memory: a STAGES-deep ring, 1024-byte aligned; stage s = [A: 128 rows][B: BN rows], each row the 64
//   k-values of one x row (A) or weight row (B) = 128 bytes = 8 chunks of 16 bytes, chunk c of row r stored at
//   chunk c ^ (r % 8). That is wgmma's K-major 128-byte-swizzle canonical layout: 8-row groups of 1024 bytes
//   (descriptor: stride byte offset 1024, leading byte offset unused, swizzle mode 1 = 128B), and the hardware's
//   swizzle XORs address bits [4, 7) with bits [7, 10), so every tile must start 1024-byte aligned. The k16 slice kk
//   of a tile starts 32·kk bytes into its rows (descriptor start address + 32·kk; the swizzle then lands on the
//   stored chunk (2kk + c) ^ (r % 8)). Every thread copies with cp.async (16 bytes, zero-filled past the expert's
//   rows, Nout and Kin): chunk tid % 8 of rows tid / 8 + 32q.
// Pipeline, k tile kt: wait for its copies, fence.proxy.async (cp.async writes are generic-proxy, wgmma reads
//   async-proxy), barrier; issue its 4 wgmma, commit; wait until at most this group is in flight (so k tile kt - 1
//   is done), barrier; refill the stage kt - 1 used with k tile kt + STAGES - 1. The tensor cores always have the
//   current group queued while the threads refill.
// Epilogue: bias, rounding (or the GLU), the tile staged in the ring, 16-byte row stores as grouped_mma.
// Measured on the H200 (bench/grouped-gemm.ts): 128 × 256 at ≈ 520–565 TFLOP/s on the large prefill GEMMs (1.4–1.6×
// mma128; ≈ 70 % of cuBLAS's dense rate). Tried and dropped: a persistent form (one block an SM, copies running on
// into the block's next tile, stores straight from registers): correct, but 3–15 % slower on most shapes. Next
// steps would be a producer warp with mbarriers (no block-wide barriers per k step) and TMA multicast in clusters.
//
// Legend: N = routed rows, E = experts, Kin = input features, Nout = output features, WG = warpgroup (4 warps).

#pragma once
#include "grouped-mma.cuh"

#define WGMMA_THREADS 256  // 2 warpgroups
#define WGMMA_BM 128       // 64 rows a warpgroup
#define WGMMA_BK 64        // one 128-byte row per tile row and stage
#define WGMMA_ALIGN 1024   // the 128-byte swizzle repeats every 8 rows × 128 bytes

// ---- layout: shared by the kernel and the host-side check of the descriptors ------------------------------------
// Byte offset within a tile of chunk `chunk` (8 elements) of tile row `row`.
static __host__ __device__ __forceinline__ unsigned wgmma_chunk_offset(unsigned row, unsigned chunk) {
  return row * 128 + ((chunk ^ (row % 8)) << 4);
}
// Descriptor of a K-major operand with 128-byte swizzle whose first row starts at shared address `address`:
// start address >> 4 in bits [0, 14), leading byte offset (unused for swizzled K-major: 1) in [16, 30), stride
// byte offset 1024 >> 4 (between 8-row groups) in [32, 46), base offset 0 in [49, 52), swizzle mode 1 in [62, 64).
static __host__ __device__ __forceinline__ u64 wgmma_descriptor(unsigned address) {
  return (u64)((address & 0x3FFFF) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// ---- PTX wrappers -------------------------------------------------------------------------------------------
static __device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
static __device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Waits until at most `pending` of this warpgroup's committed wgmma groups are in flight.
template <int pending>
static __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(pending) : "memory");
}
// Orders this thread's generic-proxy shared-memory writes (cp.async) before later async-proxy reads (wgmma).
static __device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
// Pins the accumulators: the compiler may not move their reads or writes across this point.
template <int R>
static __device__ __forceinline__ void wgmma_pin(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

#define WGMMA_REGS_0_63                                                                 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "              \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "    \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "    \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define WGMMA_REGS_64_127                                                                        \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "             \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "             \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define WGMMA_ACC8(d, i)                                                                      \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define WGMMA_ACC64(d, i)                                                                                    \
  WGMMA_ACC8(d, i), WGMMA_ACC8(d, i + 8), WGMMA_ACC8(d, i + 16), WGMMA_ACC8(d, i + 24), WGMMA_ACC8(d, i + 32), \
      WGMMA_ACC8(d, i + 40), WGMMA_ACC8(d, i + 48), WGMMA_ACC8(d, i + 56)

// d (64 × BN, f32) += A (64 × 16, K-major) · B (BN × 16, K-major)ᵀ, both from shared memory; TYPE is bf16 or f16.
#define WGMMA_N128(TYPE, d, a, b)                                                                          \
  asm volatile("{ .reg .pred p; setp.ne.b32 p, %66, 0; wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE \
               "." TYPE " {" WGMMA_REGS_0_63 "}, %64, %65, p, 1, 1, 0, 0; }"                              \
               : WGMMA_ACC64(d, 0)                                                                         \
               : "l"(a), "l"(b), "r"(1))
#define WGMMA_N256(TYPE, d, a, b)                                                                           \
  asm volatile("{ .reg .pred p; setp.ne.b32 p, %130, 0; wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE \
               "." TYPE " {" WGMMA_REGS_0_63 ", " WGMMA_REGS_64_127 "}, %128, %129, p, 1, 1, 0, 0; }"       \
               : WGMMA_ACC64(d, 0), WGMMA_ACC64(d, 64)                                                      \
               : "l"(a), "l"(b), "r"(1))

template <class D, int BN> struct Wgmma;
template <> struct Wgmma<BF16, 128> {
  static __device__ __forceinline__ void run(float (&d)[64], u64 a, u64 b) { WGMMA_N128("bf16", d, a, b); }
};
template <> struct Wgmma<F16, 128> {
  static __device__ __forceinline__ void run(float (&d)[64], u64 a, u64 b) { WGMMA_N128("f16", d, a, b); }
};
template <> struct Wgmma<BF16, 256> {
  static __device__ __forceinline__ void run(float (&d)[128], u64 a, u64 b) { WGMMA_N256("bf16", d, a, b); }
};
template <> struct Wgmma<F16, 256> {
  static __device__ __forceinline__ void run(float (&d)[128], u64 a, u64 b) { WGMMA_N256("f16", d, a, b); }
};
// ---- end of PTX wrappers ------------------------------------------------------------------------------------

// ---- pieces of the kernel ----------------------------------------------------------------------------------------
// Output columns of a tile: BN, or BN / 2 with a GLU (B row r is then gate row col0 + 8(r / 16) + r % 16 for
// r % 16 < 8, else the up row of the same column, so accumulators of n8 tiles 2q and 2q + 1 hold gate and up of
// the same 8 columns, as in grouped_mma).
template <int BN, int GLU> struct WgmmaShape {
  static constexpr int OUT_BN = GLU == GLU_NONE ? BN : BN / 2;
  static constexpr int A_BYTES = WGMMA_BM * 128, STAGE_BYTES = (WGMMA_BM + BN) * 128;
  static constexpr int ROWS_PER_PASS = WGMMA_THREADS / 8;
};

// What one thread copies for one tile: chunk tid % 8 of tile rows tid / 8 + 32q (all ≡ tid / 8 mod 8: one swizzle);
// B row tid / 8 + 32q is weight row bRow0 + bStep·q, output column bFirst + bStep·q of the tile.
template <class D> struct WgmmaCopies {
  const typename D::T* aSrc;
  const typename D::T* bSrc;
  int rowsHere, colsHere;  // the tile's rows of the expert (≤ 128) and output columns (≤ OUT_BN)
};
template <class D, int BN, int GLU>
static __device__ __forceinline__ WgmmaCopies<D> wgmma_copies(const MmaSpot& spot, const typename D::T* x,
                                                              const typename D::T* w, u64 Nout, u64 Kin) {
  typedef WgmmaShape<BN, GLU> S;
  const int tid = threadIdx.x, chunk = tid % 8, passRow = tid / 8;
  const u64 ffn = Nout / 2, outWidth = GLU == GLU_NONE ? Nout : ffn, col0 = (u64)spot.colTile * S::OUT_BN;
  const u64 rowsLeft = spot.rowEnd - spot.row0;  // ≥ 1
  const int bFirst = GLU == GLU_NONE ? passRow : 8 * (passRow / 16) + passRow % 8;
  const u64 bRow0 = GLU == GLU_NONE ? col0 + passRow : (passRow % 16 < 8 ? 0 : ffn) + col0 + bFirst;
  WgmmaCopies<D> c;
  c.aSrc = x + (spot.row0 + passRow) * Kin + chunk * 8;
  c.bSrc = w + (u64)spot.expert * Nout * Kin + bRow0 * Kin + chunk * 8;
  c.rowsHere = rowsLeft < (u64)WGMMA_BM ? (int)rowsLeft : WGMMA_BM;
  c.colsHere = outWidth - col0 < (u64)S::OUT_BN ? (int)(outWidth - col0) : S::OUT_BN;
  return c;
}

// Queues the cp.async copies of k tile kTile of a tile into the stage at shared address `stage` (not committed).
template <class D, int BN, int GLU>
static __device__ __forceinline__ void wgmma_load_stage(unsigned stage, const WgmmaCopies<D>& c, u64 kTile, u64 Kin,
                                                        const typename D::T* x, const typename D::T* w) {
  typedef WgmmaShape<BN, GLU> S;
  const int tid = threadIdx.x, chunk = tid % 8, passRow = tid / 8;
  const int bFirst = GLU == GLU_NONE ? passRow : 8 * (passRow / 16) + passRow % 8, bStep = GLU == GLU_NONE ? 32 : 16;
  const u64 k = kTile * WGMMA_BK;
  const bool kOk = k + chunk * 8 < Kin;
  const unsigned aDst = stage + wgmma_chunk_offset(passRow, chunk);
#pragma unroll
  for (int q = 0; q < WGMMA_BM / S::ROWS_PER_PASS; q++) {
    const bool ok = kOk && passRow + S::ROWS_PER_PASS * q < c.rowsHere;
    cp_async16(aDst + q * S::ROWS_PER_PASS * 128, ok ? c.aSrc + (u64)(S::ROWS_PER_PASS * q) * Kin + k : x, ok);
  }
  const unsigned bDst = aDst + S::A_BYTES;
#pragma unroll
  for (int q = 0; q < BN / S::ROWS_PER_PASS; q++) {
    const bool ok = kOk && bFirst + bStep * q < c.colsHere;
    cp_async16(bDst + q * S::ROWS_PER_PASS * 128, ok ? c.bSrc + (u64)(bStep * q) * Kin + k : w, ok);
  }
}

// This warpgroup's 4 wgmma of one k tile (rows 64·wg .. of A), committed as one group. Both warpgroups always
// issue, also where a warpgroup's 64 rows all lie past the expert's end (zero-filled, never stored): a branch
// around wgmma makes ptxas serialize every wgmma of the kernel (C7520).
template <class D, int BN>
static __device__ __forceinline__ void wgmma_k_tile(float (&acc)[BN / 2], unsigned stage) {
  const int wg = threadIdx.x / 128;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < WGMMA_BK / 16; kk++) {
    Wgmma<D, BN>::run(acc, wgmma_descriptor(stage + wg * 64 * 128 + 32 * kk),
                      wgmma_descriptor(stage + WgmmaShape<BN, GLU_NONE>::A_BYTES + 32 * kk));
  }
  wgmma_commit();
}

// Output n8 tile j (columns 8j .. 8j + 7 of the tile), row half h, column 2(lane % 4) + v: the accumulator (with a
// GLU: the gate and up accumulators) plus bias b[.][vb] (b[1]: the up rows' bias, GLU only).
template <int BN, int GLU>
static __device__ __forceinline__ float wgmma_output(const float (&acc)[BN / 2], int j, int h, int v,
                                                     const float (&b)[2][2], int vb, float alpha, float limit) {
  if constexpr (GLU == GLU_NONE) return acc[4 * j + 2 * h + v] + b[0][vb];
  else return glu(GLU, acc[8 * j + 2 * h + v] + b[0][vb], acc[8 * j + 4 + 2 * h + v] + b[1][vb], alpha, limit);
}

// Bias of output columns col0 + col, col0 + col + 1 (b[0]; b[1]: the up rows' bias with a GLU), 0 past colsHere.
template <int GLU>
static __device__ __forceinline__ void wgmma_bias(float (&b)[2][2], const float* be, u64 col0, int col, int colsHere,
                                                  u64 ffn) {
  for (int v = 0; v < 2; v++) {
    b[0][v] = b[1][v] = 0.0f;
    if (be != 0 && col + v < colsHere) {
      b[0][v] = be[col0 + col + v];
      if (GLU != GLU_NONE) b[1][v] = be[ffn + col0 + col + v];
    }
  }
}

// ---- grouped_wgmma: one block a tile ----------------------------------------------------------------------
template <class D, int BN, int STAGES, int GLU>
static __device__ void grouped_wgmma(typename D::T* out, const typename D::T* x, const typename D::T* w,
                                     const float* bias, const int* offsets, int E, u64 N, u64 Nout, u64 Kin,
                                     unsigned colTiles, float alpha, float limit) {
  typedef typename D::T T;
  typedef WgmmaShape<BN, GLU> S;
  constexpr int OUT_BN = S::OUT_BN;
  constexpr int OUT_STRIDE = OUT_BN + 8;  // staged output row (+16 bytes: the epilogue's 4-byte writes hit 32 banks)
  static_assert(WGMMA_BM * OUT_STRIDE * 2 <= STAGES * S::STAGE_BYTES, "the staged output tile must fit the ring");
  extern __shared__ unsigned char smem[];  // the ring + WGMMA_ALIGN bytes of slack to align it
  __shared__ MmaSpot spot;
  if (threadIdx.x < 32) locate_mma_tile<WGMMA_BM>(&spot, offsets, E, N, blockIdx.x, colTiles);
  __syncthreads();
  const int e = spot.expert;
  if (e < 0) return;  // block-uniform
  const u64 ffn = Nout / 2, outWidth = GLU == GLU_NONE ? Nout : ffn;
  const u64 row0 = spot.row0, col0 = (u64)spot.colTile * OUT_BN;
  const int tid = threadIdx.x, wg = tid / 128;
  const unsigned base = smem_address(smem), ring = (base + WGMMA_ALIGN - 1) & ~(unsigned)(WGMMA_ALIGN - 1);
  unsigned char* ringBytes = smem + (ring - base);
  const WgmmaCopies<D> copies = wgmma_copies<D, BN, GLU>(spot, x, w, Nout, Kin);
  const int rowsHere = copies.rowsHere, colsHere = copies.colsHere;

  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;

  const u64 kTiles = (Kin + WGMMA_BK - 1) / WGMMA_BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if ((u64)s < kTiles) wgmma_load_stage<D, BN, GLU>(ring + s * S::STAGE_BYTES, copies, s, Kin, x, w);
    cp_async_commit();
  }
  for (u64 kt = 0; kt < kTiles; kt++) {
    cp_async_wait<STAGES - 2>();  // this thread's copies of k tile kt are done ...
    fence_proxy_async();          // ... visible to wgmma ...
    __syncthreads();              // ... and everyone's
    wgmma_k_tile<D, BN>(acc, ring + (unsigned)(kt % STAGES) * S::STAGE_BYTES);
    wgmma_wait<1>();  // this warpgroup's k tile kt - 1 is done ...
    __syncthreads();  // ... and the other's: its stage, (kt + STAGES - 1) % STAGES, is free
    const u64 next = kt + STAGES - 1;
    if (next < kTiles) {
      wgmma_load_stage<D, BN, GLU>(ring + (unsigned)(next % STAGES) * S::STAGE_BYTES, copies, next, Kin, x, w);
    }
    cp_async_commit();  // possibly empty: keeps one group per k tile for the wait above
  }
  wgmma_wait<0>();
  wgmma_pin(acc);
  cp_async_wait<0>();
  __syncthreads();  // the ring is free: stage the output tile in it

  T* staged = (T*)ringBytes;  // [BM][OUT_STRIDE]
  const int lane = tid % 32, rowBase = 64 * wg + 16 * ((tid / 32) % 4) + lane / 4, t4 = lane % 4;
  const float* be = bias == 0 ? 0 : bias + (u64)e * Nout;
#pragma unroll
  for (int j = 0; j < OUT_BN / 8; j++) {
    const int col = 8 * j + 2 * t4;  // output column of the pair within the tile
    float b[2][2];
    wgmma_bias<GLU>(b, be, col0, col, colsHere, ffn);
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const unsigned lo = D::store(wgmma_output<BN, GLU>(acc, j, h, 0, b, 0, alpha, limit));
      const unsigned hi = D::store(wgmma_output<BN, GLU>(acc, j, h, 1, b, 1, alpha, limit));
      *(unsigned*)&staged[(rowBase + 8 * h) * OUT_STRIDE + col] = lo | (hi << 16);
    }
  }
  __syncthreads();
  // OUT_BN / 8 chunks of 8 elements a row; thread tid writes chunks tid + WGMMA_THREADS·q.
  const bool vectorOut = outWidth % 8 == 0 && ((unsigned long long)out & 15) == 0;
#pragma unroll 4
  for (int q = 0; q < WGMMA_BM * (OUT_BN / 8) / WGMMA_THREADS; q++) {
    const int i = tid + WGMMA_THREADS * q, row = i / (OUT_BN / 8), col = (i % (OUT_BN / 8)) * 8;
    if (row >= rowsHere || col >= colsHere) continue;
    T* dst = out + (row0 + row) * outWidth + col0 + col;
    const T* src = &staged[row * OUT_STRIDE + col];
    if (vectorOut) {
      *(Chunk16*)dst = *(const Chunk16*)src;
    } else {
      for (int v = 0; v < 8 && col + v < colsHere; v++) dst[v] = src[v];
    }
  }
}

// grouped_wgmma_<name>_<BN>: dynamic shared memory STAGES × (128 + BN) × 128 bytes + WGMMA_ALIGN (moe.ts mirrors
// this). Arguments as grouped_mma's; alpha and limit are read by the clamped kernels only.
#define GROUPED_WGMMA_KERNEL(name, D, BN, STAGES, BLOCKS_PER_SM, GLU)                                          \
  extern "C" __global__ void __launch_bounds__(WGMMA_THREADS, BLOCKS_PER_SM) grouped_wgmma_##name##_##BN(     \
      D::T* out, const D::T* x, const D::T* w, const float* bias, const int* offsets, int E, u64 N, u64 Nout, \
      u64 Kin, unsigned colTiles, float alpha, float limit) {                                                  \
    grouped_wgmma<D, BN, STAGES, GLU>(out, x, w, bias, offsets, E, N, Nout, Kin, colTiles, alpha, limit);      \
  }

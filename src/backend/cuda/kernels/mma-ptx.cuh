// The tensor-core and async-copy instructions of the mma.sync kernels (attention-mma.cu, grouped-mma.cuh, and
// grouped-wgmma.cuh's copies; sm_80 and newer), each a thin PTX wrapper: a shared-memory address as the 32-bit
// offset the shared-state-space instructions take, cp.async 16-byte copies global → shared (zero-filled when not
// valid) with commit and wait, ldmatrix of four 8×8 b16 matrices (plain or transposed), and mma.sync m16n8k16 with
// bf16 or f16 inputs and f32 accumulators. Fragment layouts: PTX ISA "Matrix Fragments for mma.m16n8k16 with
// floating point type" and "ldmatrix". Include dtypes.cuh first (BF16, F16).
//
// launch.ts inlines every `#include "x.cuh"` line and drops `#pragma once`, so a second include of this header (say
// through two other headers) would be pasted again: the include guard keeps that copy empty.
#pragma once
#ifndef MOETS_MMA_PTX_CUH
#define MOETS_MMA_PTX_CUH

// A shared-memory address as the 32-bit offset the shared-state-space instructions take.
static __device__ __forceinline__ unsigned smem_address(const void* p) {
  unsigned r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}

// 16 bytes global → shared, bypassing L1; when !valid nothing is read and the 16 bytes are zero-filled (src must
// still be a mapped address). dst: a shared address (smem_address) or a pointer into shared memory.
static __device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
static __device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  cp_async16(smem_address(dst), src, valid);
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
static __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(pending) : "memory");
}

// Four 8×8 matrices of 16-bit elements: lanes 8j..8j+7 give the row addresses of matrix j (a shared address, or a
// pointer into shared memory), and lane l receives row l/4, elements 2(l%4) and 2(l%4)+1 of matrix j in r[j]
// (transposed: rows 2(l%4) and +1 of column l/4).
static __device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
static __device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) { ldmatrix_x4(r, smem_address(row)); }
static __device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
static __device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  ldmatrix_x4_trans(r, smem_address(row));
}

// d += a · b: a 16×16 (row-major fragment), b 16×8 (column-major fragment), d 16×8 in f32.
template <class D> struct Mma;
template <> struct Mma<BF16> {
  static __device__ __forceinline__ void run(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <> struct Mma<F16> {
  static __device__ __forceinline__ void run(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

#endif  // MOETS_MMA_PTX_CUH

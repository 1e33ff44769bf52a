// Shared by every kernel file (each starts with `#include "dtypes.cuh"`; launch.ts inlines it before NVRTC
// compiles, and nvcc finds it beside the file): 64-bit sizes, the storage dtypes with a widening load to f32 and a
// narrowing store rounded to nearest even (PTX cvt: NVRTC needs no CUDA headers), and loop helpers.
#pragma once

typedef unsigned long long u64;
#define FULL_MASK 0xffffffffu

struct F32 {
  typedef float T;
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};

struct BF16 {
  typedef unsigned short T;
  static __device__ __forceinline__ float load(unsigned short h) { return __uint_as_float((unsigned int)h << 16); }
  static __device__ __forceinline__ unsigned short store(float f) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
  }
};

struct F16 {
  typedef unsigned short T;
  static __device__ __forceinline__ float load(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
  }
  static __device__ __forceinline__ unsigned short store(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
  }
};

#define FOR_EACH_DTYPE(X) X(f32, F32) X(bf16, BF16) X(f16, F16)

// Grid-stride loop over [0, n): any grid size covers any n.
#define GRID_STRIDE(i, n) \
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// Random fill on the device, for benchmarks that need gigabytes of random weights without a host upload.
// Kernels fill_random_<dtype>: out[i] = std · z_i, with z_i a standard normal from a counter-based hash of (seed, i)
// (splitmix64 → two uniforms → Box–Muller), so a fill is reproducible and independent of the grid.
// Launchers in random.ts. Compiled by NVRTC: no #include.
//
// Legend: n = elements.

#include "dtypes.cuh"

static __device__ __forceinline__ u64 splitmix64(u64 z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A standard normal for element i of the stream `seed`.
static __device__ __forceinline__ float hashed_normal(u64 seed, u64 i) {
  const u64 h = splitmix64(splitmix64(seed) ^ i);
  const float u1 = ((unsigned)(h >> 40) + 1u) * (1.0f / 16777217.0f); // (0, 1]
  const float u2 = (unsigned)(h & 0xffffffu) * (1.0f / 16777216.0f);  // [0, 1)
  return sqrtf(-2.0f * __logf(u1)) * __cosf(6.283185307f * u2);
}

extern "C" __global__ void fill_random_f32(float* out, u64 n, u64 seed, double stddev) {
  const float s = (float)stddev;
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    out[i] = s * hashed_normal(seed, i);
  }
}

extern "C" __global__ void fill_random_bf16(unsigned short* out, u64 n, u64 seed, double stddev) {
  const float s = (float)stddev;
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(s * hashed_normal(seed, i)));
    out[i] = h;
  }
}

extern "C" __global__ void fill_random_f16(unsigned short* out, u64 n, u64 seed, double stddev) {
  const float s = (float)stddev;
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(s * hashed_normal(seed, i)));
    out[i] = h;
  }
}

// Random fill on the device, for benchmarks that need gigabytes of random weights without a host upload.
// Kernels fill_random_<dtype>: out[i] = std · z_i, with z_i a standard normal from a counter-based hash of (seed, i)
// (splitmix64 → two uniforms → Box–Muller), so a fill is reproducible and independent of the grid.
// Launchers in random.ts. Compiled by NVRTC; the shared dtypes.cuh is inlined by launch.ts.
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

// Rounded once to the storage dtype by the shared D::store (dtypes.cuh), as every other kernel rounds.
#define FILL_RANDOM_KERNEL(name, D)                                                                               \
  extern "C" __global__ void fill_random_##name(D::T* out, u64 n, u64 seed, double stddev) {                      \
    const float s = (float)stddev;                                                                                \
    GRID_STRIDE(i, n) out[i] = D::store(s * hashed_normal(seed, i));                                              \
  }
FOR_EACH_DTYPE(FILL_RANDOM_KERNEL)

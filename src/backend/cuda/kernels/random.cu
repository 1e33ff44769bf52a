// Random fill on the device (Backend.randomNormal), so gigabytes of random weights need no host upload.
// Kernels fill_random_<dtype>: out[i] = std · z_i, with z_i a standard normal from a counter-based hash of (seed, i)
// (splitmix64 → two uniforms → Box–Muller), so a fill is reproducible and independent of the grid. The normal is
// computed in double precision, as the CPU backend computes it (cpu/random.ts), so both give the same stored values
// (the two libm's log and cos may differ in a double's last bit, which changes a rounded value about once in 10^8).
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

// A standard normal for element i of the stream `seed`: h's top 24 bits give u1 in (0, 1], its low 24 bits u2.
static __device__ __forceinline__ double hashed_normal(u64 seed, u64 i) {
  const u64 h = splitmix64(splitmix64(seed) ^ i);
  const double u1 = (double)((h >> 40) + 1) / 16777217.0;
  const double u2 = (double)(h & 0xffffffull) / 16777216.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// std · z rounded to f32, then once more by the shared D::store (dtypes.cuh) to the storage dtype, as the CPU does.
#define FILL_RANDOM_KERNEL(name, D)                                                                               \
  extern "C" __global__ void fill_random_##name(D::T* out, u64 n, u64 seed, double stddev) {                      \
    GRID_STRIDE(i, n) out[i] = D::store((float)(stddev * hashed_normal(seed, i)));                                \
  }
FOR_EACH_DTYPE(FILL_RANDOM_KERNEL)

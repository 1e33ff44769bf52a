// Packs of V elements loaded and stored as one access (16 bytes for V = 16 / element size; two 16-byte accesses
// for 8 f32; a plain element access for V = 1). Included by norm-rope.cu and dispatch.cu after dtypes.cuh
// (launch.ts inlines both before NVRTC compiles).
//
// A pack must sit at a multiple of its alignment (min(16, V · element size)): the launchers take the packed path
// only when the row length is a multiple of V and every base address is aligned (row-layout.ts), else V = 1.
#pragma once

template <class T, int V>
struct alignas(V * sizeof(T) >= 16 ? 16 : V * sizeof(T)) Pack {
  T v[V];
};

template <class T, int V>
static __device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

template <class T, int V>
static __device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& v) {
  *reinterpret_cast<Pack<T, V>*>(p) = v;
}

// Elements per 16-byte pack of storage type S (8 for bf16/f16, 4 for f32).
template <class S>
struct Packed {
  static constexpr int V = 16 / sizeof(typename S::T);
};

// Layout kernels: slice_columns, concat_heads, embedding and write_rows. They move stored values without arithmetic, so each
// copies raw element bits (exact in every dtype, NaN payloads included). Named <op>_<dtype> for f32, bf16, f16
// (and i32 for the two layout ops), extern "C" so the backend finds them by name.
//
// This file is the "kernels" half; the launchers are in layout.ts beside it. Compiled by NVRTC at run time
// (see ../compile-cache.ts), with dtypes.cuh inlined. Every kernel is a grid-stride loop over the n output elements, indexed in
// 64 bits, so any grid size covers any n.
//
// Legend: R = rows, C = columns, T = tokens, H = heads, A/B = per-head widths of the two parts, V = vocabulary,
// D = row width.

#include "dtypes.cuh"

// <dtype name, storage bits type, bits of a quiet NaN (0 for i32, which has none)>
#define FOR_EACH_LAYOUT_DTYPE(X) \
  X(f32, unsigned int, 0x7fc00000u) X(i32, unsigned int, 0u) X(bf16, unsigned short, 0x7fc0u) X(f16, unsigned short, 0x7e00u)
#define FOR_EACH_FLOAT_DTYPE(X) \
  X(f32, unsigned int, 0x7fc00000u) X(bf16, unsigned short, 0x7fc0u) X(f16, unsigned short, 0x7e00u)

// out [R, count] = x [R, C] columns [start, start + count).
#define SLICE_COLUMNS_KERNEL(name, T, nan)                                                                     \
  extern "C" __global__ void slice_columns_##name(T* out, const T* x, u64 cols, u64 start, u64 count, u64 n) {  \
    GRID_STRIDE(i, n) out[i] = x[(i / count) * cols + start + i % count];                                       \
  }
FOR_EACH_LAYOUT_DTYPE(SLICE_COLUMNS_KERNEL)

// out [T, H, A+B] = a [T, H, A] and b [T, Hb, B] joined per head; Hb = 1 gives every head of token t b's row t.
#define CONCAT_HEADS_KERNEL(name, T, nan)                                                                      \
  extern "C" __global__ void concat_heads_##name(T* out, const T* a, const T* b, u64 heads, u64 aWidth,       \
                                                 u64 bWidth, int bBroadcast, u64 n) {                          \
    const u64 width = aWidth + bWidth;                                                                          \
    GRID_STRIDE(i, n) {                                                                                         \
      const u64 row = i / width, c = i % width; /* row = t * H + h */                                          \
      const u64 bRow = bBroadcast ? row / heads : row;                                                          \
      out[i] = c < aWidth ? a[row * aWidth + c] : b[bRow * bWidth + (c - aWidth)];                              \
    }                                                                                                           \
  }
FOR_EACH_LAYOUT_DTYPE(CONCAT_HEADS_KERNEL)

// out [T, D] = table [V, D] rows picked by ids [T]. Callers validate ids; an id outside [0, V) gives a row of NaN
// here instead of a read outside the table (which would end the CUDA context for the whole process).
#define EMBEDDING_KERNEL(name, T, nan)                                                                         \
  extern "C" __global__ void embedding_##name(T* out, const T* table, const int* ids, u64 vocab, u64 width,   \
                                              u64 n) {                                                          \
    GRID_STRIDE(i, n) {                                                                                         \
      const long long id = ids[i / width];                                                                      \
      out[i] = id >= 0 && (u64)id < vocab ? table[(u64)id * width + i % width] : (T)(nan);                     \
    }                                                                                                           \
  }
FOR_EACH_FLOAT_DTYPE(EMBEDDING_KERNEL)

// dst [R, D] row rows[t] = src [T, D] row t, in place (the KV cache append; rows come from device memory, so a
// captured graph writes wherever the step's rows say). A row outside [0, R) writes nothing instead of outside dst.
#define WRITE_ROWS_KERNEL(name, T, nan)                                                                        \
  extern "C" __global__ void write_rows_##name(T* dst, const T* src, const int* rows, u64 dstRows, u64 width, \
                                               u64 n) {                                                        \
    GRID_STRIDE(i, n) {                                                                                         \
      const long long row = rows[i / width];                                                                    \
      if (row >= 0 && (u64)row < dstRows) dst[(u64)row * width + i % width] = src[i];                           \
    }                                                                                                           \
  }
FOR_EACH_LAYOUT_DTYPE(WRITE_ROWS_KERNEL)

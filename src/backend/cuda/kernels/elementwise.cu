// Elementwise kernels: add, mul, scale, scale_rows, sigmoid, clamp, broadcast_rows and cast, for f32, bf16 and f16
// storage, each computed in f32 (scale and clamp take their scalars in f64, as the CPU reference computes them)
// and rounded once to the output dtype, to nearest even. Named <op>_<dtype> (cast_<from>_<to>), extern "C" so the
// backend finds them by name.
//
// This file is the "kernels" half; the launchers (grid sizes, argument lists) are in elementwise.ts beside it.
// Compiled by NVRTC at run time (see ../compile-cache.ts). The only include, dtypes.cuh, is inlined by launch.ts,
// so nothing depends on header paths; bf16 and f16 are converted with the PTX cvt instructions there.
//
// Every kernel is a grid-stride loop over n elements: any grid size covers any n.

#include "dtypes.cuh"

// ---- kernels ---------------------------------------------------------------------------------------------------
#define BINARY_KERNEL(op, expr, name, D)                                                                      \
  extern "C" __global__ void op##_##name(D::T* out, const D::T* a, const D::T* b, u64 n) {                   \
    GRID_STRIDE(i, n) {                                                                                       \
      float x = D::load(a[i]), y = D::load(b[i]);                                                             \
      out[i] = D::store(expr);                                                                                \
    }                                                                                                         \
  }
#define ADD_KERNEL(name, D) BINARY_KERNEL(add, x + y, name, D)
#define MUL_KERNEL(name, D) BINARY_KERNEL(mul, x * y, name, D)
FOR_EACH_DTYPE(ADD_KERNEL)
FOR_EACH_DTYPE(MUL_KERNEL)

// out = x * s for a scalar s (the product in f64, as the CPU reference forms it).
#define SCALE_KERNEL(name, D)                                                                                 \
  extern "C" __global__ void scale_##name(D::T* out, const D::T* x, double s, u64 n) {                       \
    GRID_STRIDE(i, n) out[i] = D::store((float)((double)D::load(x[i]) * s));                                  \
  }
FOR_EACH_DTYPE(SCALE_KERNEL)

// x [R, D] times s [R] (f32), row by row.
#define SCALE_ROWS_KERNEL(name, D)                                                                            \
  extern "C" __global__ void scale_rows_##name(D::T* out, const D::T* x, const float* s, u64 cols, u64 n) {  \
    GRID_STRIDE(i, n) out[i] = D::store(D::load(x[i]) * s[i / cols]);                                         \
  }
FOR_EACH_DTYPE(SCALE_ROWS_KERNEL)

#define SIGMOID_KERNEL(name, D)                                                                               \
  extern "C" __global__ void sigmoid_##name(D::T* out, const D::T* x, u64 n) {                               \
    GRID_STRIDE(i, n) out[i] = D::store(1.0f / (1.0f + expf(-D::load(x[i]))));                                \
  }
FOR_EACH_DTYPE(SIGMOID_KERNEL)

// min(max(x, lo), hi), NaN passing through (as JavaScript's Math.min/Math.max do).
#define CLAMP_KERNEL(name, D)                                                                                 \
  extern "C" __global__ void clamp_##name(D::T* out, const D::T* x, double lo, double hi, u64 n) {           \
    GRID_STRIDE(i, n) {                                                                                       \
      double v = D::load(x[i]);                                                                               \
      v = v < lo ? lo : v;                                                                                    \
      v = v > hi ? hi : v;                                                                                    \
      out[i] = D::store((float)v);                                                                            \
    }                                                                                                         \
  }
FOR_EACH_DTYPE(CLAMP_KERNEL)

// out [R, D] = row [D] repeated (a bias before a GEMM that accumulates onto it).
#define BROADCAST_ROWS_KERNEL(name, D)                                                                        \
  extern "C" __global__ void broadcast_rows_##name(D::T* out, const D::T* row, u64 cols, u64 n) {           \
    GRID_STRIDE(i, n) out[i] = row[i % cols];                                                                 \
  }
FOR_EACH_DTYPE(BROADCAST_ROWS_KERNEL)

// cast_<from>_<to>: widen to f32 (exact), round to the target (to nearest even).
#define CAST_KERNEL(from, S, to, D)                                                                           \
  extern "C" __global__ void cast_##from##_##to(D::T* out, const S::T* x, u64 n) {                           \
    GRID_STRIDE(i, n) out[i] = D::store(S::load(x[i]));                                                       \
  }
#define CAST_FROM(from, S) CAST_KERNEL(from, S, f32, F32) CAST_KERNEL(from, S, bf16, BF16) CAST_KERNEL(from, S, f16, F16)
FOR_EACH_DTYPE(CAST_FROM)

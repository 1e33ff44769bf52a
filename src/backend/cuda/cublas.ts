// Bindings to cuBLAS through koffi: a handle on the backend's stream with a workspace of its own, and cublasGemmEx,
// enough for `linear`. The workspace is given at load (cublasSetWorkspace), so cuBLAS allocates nothing while a
// CUDA graph is being captured (it would otherwise allocate inside the capture).
// libcublasLt is found and loaded first (from the same major version), so libcublas links against that copy.
// Every call is checked: a failure throws a CudaCallError naming the call and the cuBLAS status.
//
// Row-major y [M, N] = x [M, K] · w [N, K]ᵀ is, in cuBLAS's column-major terms, yᵀ [N, M] = op(w) · xᵀ with
// w seen as a column-major [K, N] matrix transposed (lda = K) and x as a column-major [K, M] one (ldb = K).
import type { FloatDType } from '../../core/dtype.ts';
import { CudaCallError, bindFirst, loadKoffi, type Handle, type NativeFunction } from './ffi.ts';
import { CUDA_LIBRARIES, findLibrary, majorOf, withMajor, type SearchContext } from './libraries.ts';

/** cudaDataType_t values. */
const DATA_TYPE: Record<FloatDType, number> = { f32: 0, f16: 2, bf16: 14 };
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_GEMM_DEFAULT = -1;
const CUBLAS_OP_N = 0;
const CUBLAS_OP_T = 1;

const FUNCTIONS = {
  create: [['cublasCreate_v2'], 'int %s(_Out_ cublasHandle_t *handle)'],
  setStream: [['cublasSetStream_v2'], 'int %s(cublasHandle_t handle, CUstream stream)'],
  setWorkspace: [['cublasSetWorkspace_v2'], 'int %s(cublasHandle_t handle, uint64_t workspace, size_t bytes)'],
  statusName: [['cublasGetStatusName'], 'const char *%s(int status)'],
  gemmEx: [['cublasGemmEx'], 'int %s(cublasHandle_t handle, int transa, int transb, int m, int n, int k, ' +
    'const void *alpha, uint64_t A, int Atype, int lda, uint64_t B, int Btype, int ldb, const void *beta, ' +
    'uint64_t C, int Ctype, int ldc, int computeType, int algo)'],
} as const satisfies Record<string, readonly [readonly string[], string]>;

type Fn = Record<keyof typeof FUNCTIONS, NativeFunction>;

export interface GemmShape {
  /** Rows of x and y. */
  M: number;
  /** Columns of y (rows of w). */
  N: number;
  /** The shared inner size. */
  K: number;
}

export class Cublas {
  private readonly alpha = Float32Array.of(1);
  private readonly beta = new Float32Array(1);

  private constructor(readonly path: string, private readonly fn: Fn, private readonly handle: Handle) {}

  /**
   * Loads libcublasLt and libcublas, creates a handle, puts it on `stream` and gives it `workspace` (a device
   * address of workspace.bytes, kept for the handle's life). Needs a current context.
   */
  static load(stream: Handle, workspace: { pointer: number; bytes: number }, ctx?: SearchContext): Cublas {
    const koffi = loadKoffi();
    const lt = findLibrary(CUDA_LIBRARIES.cublasLt, (path) => koffi.load(path), ctx);
    const found = findLibrary(withMajor(CUDA_LIBRARIES.cublas, majorOf(lt.path)), (path) => koffi.load(path), ctx);
    const fn = {} as Fn;
    for (const [key, [names, decl]] of Object.entries(FUNCTIONS)) {
      fn[key as keyof Fn] = bindFirst(found.lib, names, (name) => decl.replace('%s', name));
    }
    const out: unknown[] = [null];
    check(fn, 'cublasCreate', fn.create(out));
    const handle = out[0] as Handle;
    check(fn, 'cublasSetStream', fn.setStream(handle, stream));
    check(fn, 'cublasSetWorkspace', fn.setWorkspace(handle, workspace.pointer, workspace.bytes), `${workspace.bytes} bytes`);
    return new Cublas(found.path, fn, handle);
  }

  /**
   * y [M, N] = x [M, K] · w [N, K]ᵀ (+ y when accumulate), all row-major and of one dtype, accumulated in f32
   * (no TF32 for f32: CUBLAS_COMPUTE_32F). Queued on the handle's stream.
   */
  linear(y: number, x: number, w: number, dtype: FloatDType, { M, N, K }: GemmShape, accumulate: boolean): void {
    if (M === 0 || N === 0) return;
    this.beta[0] = accumulate ? 1 : 0;
    const t = DATA_TYPE[dtype];
    const r = this.fn.gemmEx(this.handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, this.alpha, w, t, K, x, t, K,
      this.beta, y, t, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (r !== 0) check(this.fn, 'cublasGemmEx', r, `${dtype} M=${M} N=${N} K=${K}`);
  }
}

function check(fn: Fn, call: string, result: unknown, what = ''): void {
  if (result === 0) return;
  const code = Number(result);
  throw new CudaCallError(call, code, String(fn.statusName(code) ?? `cublasStatus ${code}`), what);
}

/* A fake of the CUDA libraries moets binds (libcuda, libnvrtc, libcublas/Lt), with "device memory" in host memory,
 * for fake-bindings.test.ts: it checks, without a GPU, that every koffi declaration in src/backend/cuda binds and
 * marshals its arguments as the real C functions take them. Built by the test with the system C compiler.
 *
 * It does real work where the backend's arithmetic depends on argument order: copies move bytes, cublasGemmEx
 * computes the column-major f32 product of its arguments, and one kernel (add_f32) runs on the host. Kernels of
 * other names are "not found", as in a module that lacks them.
 *
 * Stream capture records instead of running: between cuStreamBeginCapture_v2 and cuStreamEndCapture, launches,
 * device-to-device copies and memsets become nodes of a graph (argument values copied, as the driver copies
 * them), cuGraphLaunch runs the nodes in order. Host transfers during a capture fail as the driver's do
 * (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED), and so does a capture in a mode other than relaxed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long u64;
static int fake_handle;
#define DEV(p) ((void *)(uintptr_t)(p))

/* ---- graphs: a node is a launch (fn + up to 8 argument values), a copy or a memset ---- */
enum { LAUNCH, COPY, SET };
typedef struct { int kind; void (*fn)(void **); u64 args[8]; u64 dst, src, n; unsigned char value; } node;
typedef struct { node *nodes; int count; } graph;
static graph *capture; /* the graph being recorded, 0 when not capturing */
#define CAPTURE_UNSUPPORTED 900

static void record(node n) {
  capture->nodes = realloc(capture->nodes, sizeof(node) * (size_t)(capture->count + 1));
  capture->nodes[capture->count++] = n;
}
static void run_node(const node *n) {
  if (n->kind == COPY) memmove(DEV(n->dst), DEV(n->src), n->n);
  else if (n->kind == SET) memset(DEV(n->dst), n->value, n->n);
  else {
    void *params[8];
    u64 values[8];
    for (int i = 0; i < 8; i++) { values[i] = n->args[i]; params[i] = &values[i]; }
    n->fn(params);
  }
}
static graph *copy_graph(const graph *g) {
  graph *c = calloc(1, sizeof(graph));
  c->count = g->count;
  c->nodes = malloc(sizeof(node) * (size_t)(g->count ? g->count : 1));
  memcpy(c->nodes, g->nodes, sizeof(node) * (size_t)g->count);
  return c;
}
static void free_graph(graph *g) { free(g->nodes); free(g); }

int cuStreamBeginCapture_v2(void *s, int mode) {
  if (capture || mode != 2 || s != &fake_handle) return 1;
  capture = calloc(1, sizeof(graph));
  return 0;
}
int cuStreamEndCapture(void *s, void **g) {
  if (!capture) return 1;
  *g = capture;
  capture = 0;
  return 0;
}
int cuGraphInstantiateWithFlags(void **exec, void *g, unsigned long long flags) { *exec = copy_graph(g); return flags == 0 ? 0 : 1; }
int cuGraphLaunch(void *exec, void *s) {
  const graph *g = exec;
  if (capture) return CAPTURE_UNSUPPORTED;
  for (int i = 0; i < g->count; i++) run_node(&g->nodes[i]);
  return 0;
}
int cuGraphExecDestroy(void *exec) { free_graph(exec); return 0; }
int cuGraphDestroy(void *g) { free_graph(g); return 0; }

/* ---- libcuda ---- */
int cuInit(unsigned flags) { return flags == 0 ? 0 : 1; }
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
int cuGetErrorName(int e, const char **s) { *s = e == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : e == 500 ? "CUDA_ERROR_NOT_FOUND" : "CUDA_ERROR_UNKNOWN"; return 0; }
int cuGetErrorString(int e, const char **s) { *s = e == 2 ? "out of memory" : e == 500 ? "named symbol not found" : "unknown error"; return 0; }
int cuDeviceGetCount(int *c) { *c = 1; return 0; }
int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return 0; }
int cuDeviceGetAttribute(int *v, int a, int d) {
  *v = a == 75 ? 9 : a == 76 ? 0 : a == 16 ? 132 : a == 38 ? 50331648 : a == 97 ? 232448 : 0;
  return 0;
}
int cuDeviceGetName(char *name, int len, int d) { strncpy(name, "Fake GPU", (size_t)len); return 0; }
int cuDeviceTotalMem_v2(size_t *bytes, int d) { *bytes = (size_t)80 << 30; return 0; }
int cuDevicePrimaryCtxRetain(void **ctx, int d) { *ctx = &fake_handle; return 0; }
int cuCtxSetCurrent(void *ctx) { return ctx == &fake_handle ? 0 : 201; }
int cuStreamCreate(void **s, unsigned flags) { *s = &fake_handle; return 0; }
int cuStreamSynchronize(void *s) { return s == &fake_handle ? 0 : 400; }
int cuMemAlloc_v2(u64 *p, size_t bytes) {
  if (bytes > ((size_t)1 << 36)) return 2;
  *p = (u64)(uintptr_t)malloc(bytes);
  return 0;
}
int cuMemFree_v2(u64 p) { free(DEV(p)); return 0; }
int cuMemGetInfo_v2(size_t *f, size_t *t) { *f = (size_t)79 << 30; *t = (size_t)80 << 30; return 0; }
int cuMemcpyHtoDAsync_v2(u64 dst, const void *src, size_t n, void *s) {
  if (capture) return CAPTURE_UNSUPPORTED;
  memcpy(DEV(dst), src, n);
  return 0;
}
int cuMemcpyDtoHAsync_v2(void *dst, u64 src, size_t n, void *s) {
  if (capture) return CAPTURE_UNSUPPORTED;
  memcpy(dst, DEV(src), n);
  return 0;
}
int cuMemcpyDtoDAsync_v2(u64 dst, u64 src, size_t n, void *s) {
  node c = { COPY, 0, {0}, dst, src, n, 0 };
  if (capture) record(c); else run_node(&c);
  return 0;
}
int cuMemsetD8Async(u64 dst, unsigned char v, size_t n, void *s) {
  node c = { SET, 0, {0}, dst, 0, n, v };
  if (capture) record(c); else run_node(&c);
  return 0;
}
int cuModuleLoadData(void **m, const void *image) { *m = &fake_handle; return memcmp(image, "\x7f" "ELF", 4) == 0 ? 0 : 200; }

static void add_f32(void **params) {
  float *out = *(float **)params[0];
  const float *a = *(float **)params[1], *b = *(float **)params[2];
  u64 n = *(u64 *)params[3];
  for (u64 i = 0; i < n; i++) out[i] = a[i] + b[i];
}
int cuModuleGetFunction(void **fn, void *m, const char *name) {
  if (strcmp(name, "add_f32") != 0) return 500;
  *fn = (void *)add_f32;
  return 0;
}
int cuFuncSetAttribute(void *fn, int a, int v) { return 0; }
int cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared, void *stream, void **params, void **extra) {
  if (gx == 0 || bx == 0 || bx > 1024 || extra != 0) return 1;
  node k = { LAUNCH, (void (*)(void **))fn, {0}, 0, 0, 0, 0 };
  for (int i = 0; i < 8; i++) k.args[i] = *(u64 *)params[i]; /* the backend's argument block has 24 slots */
  if (capture) record(k); else run_node(&k);
  return 0;
}
int cuEventCreate(void **e, unsigned flags) { *e = malloc(1); return 0; }
int cuEventRecord(void *e, void *s) { return 0; }
int cuEventSynchronize(void *e) { return 0; }
int cuEventDestroy_v2(void *e) { free(e); return 0; }
int cuEventElapsedTime_v2(float *ms, void *a, void *b) { *ms = 0.25f; return 0; }

/* ---- libnvrtc: "compiles" to a fake ELF; a source naming no_such_name fails with a log ---- */
typedef struct { char *source; int failed; } program;
static const char *LOG = "bad.cu(1): error: identifier \"no_such_name\" is undefined";
int nvrtcVersion(int *major, int *minor) { *major = 13; *minor = 0; return 0; }
const char *nvrtcGetErrorString(int r) { return r == 6 ? "NVRTC_ERROR_COMPILATION" : r ? "NVRTC_ERROR_INVALID_INPUT" : "NVRTC_SUCCESS"; }
int nvrtcCreateProgram(void **p, const char *src, const char *name, int n, const char **h, const char **i) {
  program *prog = calloc(1, sizeof(program));
  prog->source = strdup(src);
  *p = prog;
  return 0;
}
int nvrtcCompileProgram(void *p, int count, const char **options) {
  program *prog = p;
  if (count < 1 || strncmp(options[0], "--gpu-architecture=sm_", 22) != 0) return 5;
  prog->failed = strstr(prog->source, "no_such_name") != 0;
  return prog->failed ? 6 : 0;
}
int nvrtcDestroyProgram(void **p) { program *prog = *p; free(prog->source); free(prog); *p = 0; return 0; }
int nvrtcGetProgramLogSize(void *p, size_t *n) { *n = ((program *)p)->failed ? strlen(LOG) + 1 : 1; return 0; }
int nvrtcGetProgramLog(void *p, char *log) { strcpy(log, ((program *)p)->failed ? LOG : ""); return 0; }
int nvrtcGetCUBINSize(void *p, size_t *n) { *n = 8; return 0; }
int nvrtcGetCUBIN(void *p, char *cubin) { memcpy(cubin, "\x7f" "ELFfake", 8); return 0; }

/* ---- libcublas: GemmEx in f32, column-major, op(A) = A or Aᵀ ---- */
int cublasCreate_v2(void **h) { *h = &fake_handle; return 0; }
int cublasSetStream_v2(void *h, void *s) { return s == &fake_handle ? 0 : 7; }
int cublasSetWorkspace_v2(void *h, u64 workspace, size_t bytes) { return h == &fake_handle && workspace != 0 && bytes >= 4096 ? 0 : 7; }
const char *cublasGetStatusName(int s) { return s == 15 ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_INVALID_VALUE"; }
int cublasGemmEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, u64 A, int at, int lda, u64 B, int bt,
                 int ldb, const void *beta, u64 C, int ct, int ldc, int compute, int algo) {
  if (at != 0 || bt != 0 || ct != 0) return 15;
  if (compute != 68) return 7;
  const float *a = DEV(A), *b = DEV(B);
  float *c = DEV(C);
  float al = *(const float *)alpha, be = *(const float *)beta;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int q = 0; q < k; q++) s += (double)(ta ? a[i * lda + q] : a[q * lda + i]) * (tb ? b[q * ldb + j] : b[j * ldb + q]);
      c[j * ldc + i] = (float)(al * s + be * c[j * ldc + i]);
    }
  return 0;
}

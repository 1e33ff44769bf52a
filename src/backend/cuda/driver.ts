// Bindings to libcuda (the CUDA driver API) through koffi: only what the backend uses. Every call is checked: a
// result other than CUDA_SUCCESS throws a CudaCallError naming the call and the driver's name for the error.
//
// Device pointers (CUdeviceptr) are plain numbers: addresses stay below 2^53, which koffi converts exactly.
import { CudaCallError, bindFirst, loadKoffi, type Handle, type KoffiLib, type NativeFunction } from './ffi.ts';
import { CUDA_LIBRARIES, findLibrary, type SearchContext } from './libraries.ts';

/**
 * CU_STREAM_CAPTURE_MODE_RELAXED: during a capture the thread may still make calls that are unsafe under capture
 * (cuMemAlloc for the capture's own memory pool); moets captures on its one stream from one thread.
 */
const CAPTURE_MODE_RELAXED = 2;

/** Device attributes moets reads (values of CUdevice_attribute). */
export const DEVICE_ATTRIBUTE = {
  multiprocessorCount: 16,
  l2CacheBytes: 38,
  computeCapabilityMajor: 75,
  computeCapabilityMinor: 76,
  maxSharedMemoryPerBlockOptin: 97,
} as const;

/** Symbol names (newest first) and the C declaration of each function, `%s` standing for the symbol. */
const FUNCTIONS = {
  init: [['cuInit'], 'int %s(unsigned int flags)'],
  driverGetVersion: [['cuDriverGetVersion'], 'int %s(_Out_ int *version)'],
  getErrorName: [['cuGetErrorName'], 'int %s(int error, _Out_ const char **name)'],
  getErrorString: [['cuGetErrorString'], 'int %s(int error, _Out_ const char **text)'],
  deviceGetCount: [['cuDeviceGetCount'], 'int %s(_Out_ int *count)'],
  deviceGet: [['cuDeviceGet'], 'int %s(_Out_ int *device, int ordinal)'],
  deviceGetAttribute: [['cuDeviceGetAttribute'], 'int %s(_Out_ int *value, int attribute, int device)'],
  deviceGetName: [['cuDeviceGetName'], 'int %s(void *name, int length, int device)'],
  deviceTotalMem: [['cuDeviceTotalMem_v2', 'cuDeviceTotalMem'], 'int %s(_Out_ size_t *bytes, int device)'],
  primaryCtxRetain: [['cuDevicePrimaryCtxRetain'], 'int %s(_Out_ CUcontext *context, int device)'],
  ctxSetCurrent: [['cuCtxSetCurrent'], 'int %s(CUcontext context)'],
  streamCreate: [['cuStreamCreate'], 'int %s(_Out_ CUstream *stream, unsigned int flags)'],
  streamSynchronize: [['cuStreamSynchronize'], 'int %s(CUstream stream)'],
  memAlloc: [['cuMemAlloc_v2', 'cuMemAlloc'], 'int %s(_Out_ uint64_t *pointer, size_t bytes)'],
  memFree: [['cuMemFree_v2', 'cuMemFree'], 'int %s(uint64_t pointer)'],
  memGetInfo: [['cuMemGetInfo_v2', 'cuMemGetInfo'], 'int %s(_Out_ size_t *free, _Out_ size_t *total)'],
  memcpyHtoDAsync: [['cuMemcpyHtoDAsync_v2', 'cuMemcpyHtoDAsync'], 'int %s(uint64_t dst, const void *src, size_t bytes, CUstream stream)'],
  memcpyDtoHAsync: [['cuMemcpyDtoHAsync_v2', 'cuMemcpyDtoHAsync'], 'int %s(void *dst, uint64_t src, size_t bytes, CUstream stream)'],
  memcpyDtoDAsync: [['cuMemcpyDtoDAsync_v2', 'cuMemcpyDtoDAsync'], 'int %s(uint64_t dst, uint64_t src, size_t bytes, CUstream stream)'],
  memsetD8Async: [['cuMemsetD8Async'], 'int %s(uint64_t dst, uint8_t value, size_t count, CUstream stream)'],
  moduleLoadData: [['cuModuleLoadData'], 'int %s(_Out_ CUmodule *module, const void *image)'],
  moduleGetFunction: [['cuModuleGetFunction'], 'int %s(_Out_ CUfunction *fn, CUmodule module, const char *name)'],
  funcSetAttribute: [['cuFuncSetAttribute'], 'int %s(CUfunction fn, int attribute, int value)'],
  launchKernel: [['cuLaunchKernel'], 'int %s(CUfunction fn, unsigned int gx, unsigned int gy, unsigned int gz, ' +
    'unsigned int bx, unsigned int by, unsigned int bz, unsigned int sharedBytes, CUstream stream, void *params, void *extra)'],
  eventCreate: [['cuEventCreate'], 'int %s(_Out_ CUevent *event, unsigned int flags)'],
  eventRecord: [['cuEventRecord'], 'int %s(CUevent event, CUstream stream)'],
  eventSynchronize: [['cuEventSynchronize'], 'int %s(CUevent event)'],
  eventDestroy: [['cuEventDestroy_v2', 'cuEventDestroy'], 'int %s(CUevent event)'],
  eventElapsedTime: [['cuEventElapsedTime_v2', 'cuEventElapsedTime'], 'int %s(_Out_ float *ms, CUevent start, CUevent end)'],
  streamBeginCapture: [['cuStreamBeginCapture_v2'], 'int %s(CUstream stream, int mode)'],
  streamEndCapture: [['cuStreamEndCapture'], 'int %s(CUstream stream, _Out_ CUgraph *graph)'],
  graphInstantiate: [['cuGraphInstantiateWithFlags'], 'int %s(_Out_ CUgraphExec *exec, CUgraph graph, unsigned long long flags)'],
  graphLaunch: [['cuGraphLaunch'], 'int %s(CUgraphExec exec, CUstream stream)'],
  graphExecDestroy: [['cuGraphExecDestroy'], 'int %s(CUgraphExec exec)'],
  graphDestroy: [['cuGraphDestroy'], 'int %s(CUgraph graph)'],
} as const satisfies Record<string, readonly [readonly string[], string]>;

type Fn = Record<keyof typeof FUNCTIONS, NativeFunction>;

/** What a CUDA device is: name, compute capability, size. */
export interface DeviceInfo {
  ordinal: number;
  name: string;
  /** 90 for sm_90 (Hopper). */
  computeCapability: number;
  multiprocessors: number;
  totalMemoryBytes: number;
  l2CacheBytes: number;
  maxSharedMemoryPerBlock: number;
  driverVersion: number;
}

export class CudaDriver {
  private constructor(readonly path: string, private readonly fn: Fn) {}

  /** Finds and loads libcuda (see libraries.ts) and binds the functions; does not initialise CUDA. */
  static load(ctx?: SearchContext): CudaDriver {
    const koffi = loadKoffi();
    const found = findLibrary(CUDA_LIBRARIES.cuda, (path) => koffi.load(path), ctx);
    return new CudaDriver(found.path, bindAll(found.lib));
  }

  /** cuInit, then the device's properties. */
  init(ordinal: number): DeviceInfo {
    this.check('cuInit', this.fn.init(0));
    const count = this.out('cuDeviceGetCount', (o) => this.fn.deviceGetCount(o));
    if (ordinal >= count) throw new CudaCallError('cuDeviceGet', 101, 'CUDA_ERROR_INVALID_DEVICE', `device ${ordinal} of ${count}`);
    const dev = this.out('cuDeviceGet', (o) => this.fn.deviceGet(o, ordinal));
    const attr = (a: number) => this.out('cuDeviceGetAttribute', (o) => this.fn.deviceGetAttribute(o, a, dev));
    const name = new Uint8Array(256);
    this.check('cuDeviceGetName', this.fn.deviceGetName(name, name.length, dev));
    return {
      ordinal,
      name: Buffer.from(name.subarray(0, name.indexOf(0))).toString('utf8'),
      computeCapability: attr(DEVICE_ATTRIBUTE.computeCapabilityMajor) * 10 + attr(DEVICE_ATTRIBUTE.computeCapabilityMinor),
      multiprocessors: attr(DEVICE_ATTRIBUTE.multiprocessorCount),
      totalMemoryBytes: this.out('cuDeviceTotalMem', (o) => this.fn.deviceTotalMem(o, dev)),
      l2CacheBytes: attr(DEVICE_ATTRIBUTE.l2CacheBytes),
      maxSharedMemoryPerBlock: attr(DEVICE_ATTRIBUTE.maxSharedMemoryPerBlockOptin),
      driverVersion: this.out('cuDriverGetVersion', (o) => this.fn.driverGetVersion(o)),
    };
  }

  /** The device's primary context, made current on this thread (what the CUDA runtime and cuBLAS use too). */
  usePrimaryContext(ordinal: number): Handle {
    const dev = this.out('cuDeviceGet', (o) => this.fn.deviceGet(o, ordinal));
    const ctx = this.out<Handle>('cuDevicePrimaryCtxRetain', (o) => this.fn.primaryCtxRetain(o, dev));
    this.check('cuCtxSetCurrent', this.fn.ctxSetCurrent(ctx));
    return ctx;
  }

  streamCreate(): Handle {
    return this.out('cuStreamCreate', (o) => this.fn.streamCreate(o, 0));
  }

  streamSynchronize(stream: Handle): void {
    this.check('cuStreamSynchronize', this.fn.streamSynchronize(stream));
  }

  memAlloc(bytes: number): number {
    return this.out('cuMemAlloc', (o) => this.fn.memAlloc(o, bytes), `${bytes} bytes`);
  }

  memFree(pointer: number): void {
    this.check('cuMemFree', this.fn.memFree(pointer));
  }

  /** Free and total device memory in bytes. */
  memGetInfo(): { free: number; total: number } {
    const free = [0];
    const total = [0];
    this.check('cuMemGetInfo', this.fn.memGetInfo(free, total));
    return { free: free[0]!, total: total[0]! };
  }

  /** Queues a copy from host memory; returns once `src` has been staged, so it may be reused at once. */
  copyToDevice(dst: number, src: ArrayBufferView, bytes: number, stream: Handle): void {
    this.check('cuMemcpyHtoDAsync', this.fn.memcpyHtoDAsync(dst, src, bytes, stream));
  }

  /** Copies to pageable host memory: returns when the copy (and the work queued before it) is done. */
  copyToHost(dst: ArrayBufferView, src: number, bytes: number, stream: Handle): void {
    this.check('cuMemcpyDtoHAsync', this.fn.memcpyDtoHAsync(dst, src, bytes, stream));
  }

  copyOnDevice(dst: number, src: number, bytes: number, stream: Handle): void {
    this.check('cuMemcpyDtoDAsync', this.fn.memcpyDtoDAsync(dst, src, bytes, stream));
  }

  fillBytes(dst: number, value: number, bytes: number, stream: Handle): void {
    this.check('cuMemsetD8Async', this.fn.memsetD8Async(dst, value, bytes, stream));
  }

  moduleLoad(image: Uint8Array, what: string): Handle {
    return this.out('cuModuleLoadData', (o) => this.fn.moduleLoadData(o, image), what);
  }

  moduleFunction(module: Handle, name: string): Handle {
    return this.out('cuModuleGetFunction', (o) => this.fn.moduleGetFunction(o, module, name), name);
  }

  funcSetAttribute(fn: Handle, attribute: number, value: number): void {
    this.check('cuFuncSetAttribute', this.fn.funcSetAttribute(fn, attribute, value));
  }

  /** params: a native array of pointers, one to each argument's value (see launch.ts). */
  launch(fn: Handle, grid: number, block: number, sharedBytes: number, stream: Handle, params: unknown, what: string): void {
    const r = this.fn.launchKernel(fn, grid, 1, 1, block, 1, 1, sharedBytes, stream, params, null);
    if (r !== 0) this.check('cuLaunchKernel', r, what);
  }

  eventCreate(): Handle {
    return this.out('cuEventCreate', (o) => this.fn.eventCreate(o, 0));
  }

  eventRecord(event: Handle, stream: Handle): void {
    this.check('cuEventRecord', this.fn.eventRecord(event, stream));
  }

  eventDestroy(event: Handle): void {
    this.check('cuEventDestroy', this.fn.eventDestroy(event));
  }

  /** Milliseconds between two recorded events (waits for the second). */
  elapsedMs(start: Handle, end: Handle): number {
    this.check('cuEventSynchronize', this.fn.eventSynchronize(end));
    return this.out('cuEventElapsedTime', (o) => this.fn.eventElapsedTime(o, start, end));
  }

  /** Starts recording the work queued on `stream` into a graph instead of running it (relaxed capture mode). */
  beginCapture(stream: Handle): void {
    this.check('cuStreamBeginCapture', this.fn.streamBeginCapture(stream, CAPTURE_MODE_RELAXED));
  }

  /** Ends the capture on `stream` and returns the recorded graph. */
  endCapture(stream: Handle): Handle {
    return this.out<Handle>('cuStreamEndCapture', (o) => this.fn.streamEndCapture(stream, o));
  }

  /** An executable graph made from `graph` (the graph itself may be destroyed afterwards). */
  graphInstantiate(graph: Handle): Handle {
    return this.out<Handle>('cuGraphInstantiateWithFlags', (o) => this.fn.graphInstantiate(o, graph, 0));
  }

  /** Queues one run of an executable graph on `stream`. */
  graphLaunch(exec: Handle, stream: Handle): void {
    this.check('cuGraphLaunch', this.fn.graphLaunch(exec, stream));
  }

  /** Destroys an executable graph (one still running is freed when it completes). */
  graphExecDestroy(exec: Handle): void {
    this.check('cuGraphExecDestroy', this.fn.graphExecDestroy(exec));
  }

  graphDestroy(graph: Handle): void {
    this.check('cuGraphDestroy', this.fn.graphDestroy(graph));
  }

  /** Throws a CudaCallError unless `result` is CUDA_SUCCESS. */
  check(call: string, result: unknown, what = ''): void {
    if (result === 0) return;
    const code = Number(result);
    const name = [''];
    const text = [''];
    const named = this.fn.getErrorName(code, name) === 0;
    this.fn.getErrorString(code, text);
    const detail = [text[0], what].filter((s) => s).join('; ');
    throw new CudaCallError(call, code, named ? name[0]! : `CUresult ${code}`, detail);
  }

  /** Calls a function whose first argument is an output, checks it, and returns the output. */
  private out<T = number>(call: string, body: (out: unknown[]) => unknown, what = ''): T {
    const out: unknown[] = [null];
    this.check(call, body(out), what);
    return out[0] as T;
  }
}

function bindAll(lib: KoffiLib): Fn {
  const fn = {} as Fn;
  for (const [key, [names, decl]] of Object.entries(FUNCTIONS)) {
    fn[key as keyof Fn] = bindFirst(lib, names, (name) => decl.replace('%s', name));
  }
  return fn;
}

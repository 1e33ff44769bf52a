// One CUDA device as the backend uses it: the driver and its primary context, one stream that all work is queued
// on, the caching allocator, NVRTC with the disk cache of compiled kernels, cuBLAS, and kernel launches.
//
// Opening it loads every library it needs up front, so `--device cuda` on a machine that lacks one fails at once,
// with the one line that names the missing library (libraries.ts).
//
// Graph capture: beginCapture/endCapture record the stream's work into a CUDA graph, with the allocator drawing
// from a private pool meanwhile (allocator.ts); `capturing` lets the backend refuse host transfers inside one.
import { CachingAllocator, type DeviceBlock, type MemoryPool } from './allocator.ts';
import { CompileCache, defaultCacheDir } from './compile-cache.ts';
import { Cublas } from './cublas.ts';
import { CudaDriver, type DeviceInfo } from './driver.ts';
import { CudaCallError, loadKoffi, type Handle } from './ffi.ts';
import { KernelArgs, KernelModules, type ArgKind, type Kernel, type KernelFile } from './launch.ts';
import type { SearchContext } from './libraries.ts';
import { Nvrtc } from './nvrtc.ts';
import { fail } from '../../core/errors.ts';

/** The oldest GPU generation the kernels build for (sm_80, Ampere). */
const MIN_COMPUTE_CAPABILITY = 80;
/** Threads per block of the elementwise kernels. */
const ELEMENTWISE_BLOCK = 256;
/** Blocks per multiprocessor the elementwise grids stop at (the kernels stride over the rest). */
const ELEMENTWISE_BLOCKS_PER_SM = 16;
/** cuBLAS workspace: 32 MiB, what PyTorch gives cuBLAS on Hopper (CUBLAS_WORKSPACE_CONFIG :4096:8). */
const CUBLAS_WORKSPACE_BYTES = 32 << 20;

/** A recorded graph, ready to launch, and the memory pool its kernels use. */
export interface DeviceGraph {
  readonly exec: Handle;
  readonly pool: MemoryPool;
}

export interface CudaDeviceOptions {
  ordinal?: number;
  /** Where compiled kernels are kept; default defaultCacheDir(). */
  cacheDir?: string;
  search?: SearchContext;
}

export class CudaDevice {
  readonly allocator: CachingAllocator;
  private readonly modules: KernelModules;
  private readonly args: KernelArgs;
  private readonly maxElementwiseGrid: number;
  /** The pool of the capture in progress; undefined when none is. */
  private capturePool: MemoryPool | undefined;

  private constructor(
    readonly driver: CudaDriver,
    readonly info: DeviceInfo,
    readonly stream: Handle,
    readonly nvrtc: Nvrtc,
    readonly cublas: Cublas,
    readonly compileCache: CompileCache,
  ) {
    this.allocator = new CachingAllocator({
      alloc: (bytes) => driver.memAlloc(bytes), free: (p) => driver.memFree(p), info: () => driver.memGetInfo(),
    });
    this.modules = new KernelModules(driver, compileCache, info.computeCapability);
    this.args = new KernelArgs(loadKoffi());
    this.maxElementwiseGrid = info.multiprocessors * ELEMENTWISE_BLOCKS_PER_SM;
  }

  /** Loads the libraries and starts CUDA on one device; a one-line MoetsError('device') when it cannot. */
  static open(opts: CudaDeviceOptions = {}): CudaDevice {
    const ordinal = opts.ordinal ?? 0;
    const driver = CudaDriver.load(opts.search);
    let info: DeviceInfo;
    let stream: Handle;
    try {
      info = driver.init(ordinal);
      driver.usePrimaryContext(ordinal);
      stream = driver.streamCreate();
    } catch (err) {
      if (err instanceof CudaCallError) fail('device', `CUDA could not start: ${err.message}; check nvidia-smi, or use --device cpu`);
      throw err;
    }
    // The kernels convert to bf16 with cvt.rn.bf16.f32, which needs sm_80 (Ampere) or newer.
    if (info.computeCapability < MIN_COMPUTE_CAPABILITY) {
      fail('device', `${info.name} (sm_${info.computeCapability}) is older than moets supports (sm_${MIN_COMPUTE_CAPABILITY} and newer); use --device cpu`);
    }
    const nvrtc = Nvrtc.load(opts.search);
    const workspace = { pointer: driver.memAlloc(CUBLAS_WORKSPACE_BYTES), bytes: CUBLAS_WORKSPACE_BYTES };
    const cublas = Cublas.load(stream, workspace, opts.search);
    const cache = new CompileCache((src, name, options) => nvrtc.compile(src, name, options), nvrtc.version, opts.cacheDir ?? defaultCacheDir());
    return new CudaDevice(driver, info, stream, nvrtc, cublas, cache);
  }

  alloc(bytes: number): DeviceBlock {
    return this.allocator.allocate(bytes);
  }

  kernel(source: KernelFile, name: string, args: readonly ArgKind[]): Kernel {
    return this.modules.kernel(source, name, args);
  }

  /** Queues `kernel` with a grid of `grid` blocks of `block` threads. */
  launch(kernel: Kernel, grid: number, block: number, values: readonly number[], sharedBytes = 0): void {
    this.args.write(kernel, values);
    this.driver.launch(kernel.fn, grid, block, sharedBytes, this.stream, this.args.pointers, kernel.name);
  }

  /** Queues a grid-stride kernel over n elements (nothing for n = 0). */
  launchElementwise(kernel: Kernel, n: number, values: readonly number[]): void {
    if (n === 0) return;
    const grid = Math.min(Math.ceil(n / ELEMENTWISE_BLOCK), this.maxElementwiseGrid);
    this.launch(kernel, grid, ELEMENTWISE_BLOCK, values);
  }

  /** True while a graph is being captured (between beginCapture and endCapture). */
  get capturing(): boolean {
    return this.capturePool !== undefined;
  }

  /** Starts recording the stream's work into a graph; allocations come from a new private pool until endCapture. */
  beginCapture(): void {
    if (this.capturePool) throw new Error('internal error: a CUDA graph capture is already in progress');
    const pool = this.allocator.beginPool();
    try {
      this.driver.beginCapture(this.stream);
    } catch (err) {
      this.allocator.endPool();
      this.allocator.freePool(pool);
      throw err;
    }
    this.capturePool = pool;
  }

  /**
   * Ends the capture and makes the recorded work a launchable graph that keeps the pool. With `keep` false (the
   * body failed) the capture is ended and dropped, its pool freed, and undefined returned.
   */
  endCapture(keep: boolean): DeviceGraph | undefined {
    const pool = this.capturePool;
    if (!pool) throw new Error('internal error: no CUDA graph capture to end');
    this.capturePool = undefined;
    this.allocator.endPool();
    let graph: Handle | undefined;
    let exec: Handle | undefined;
    try {
      graph = this.driver.endCapture(this.stream);
      if (keep) exec = this.driver.graphInstantiate(graph);
    } catch (err) {
      // With keep false the body's own error is the one to report (its failure may have invalidated the capture).
      if (keep) {
        this.allocator.freePool(pool);
        throw err;
      }
    } finally {
      if (graph) this.driver.graphDestroy(graph);
    }
    if (!exec) {
      this.allocator.freePool(pool);
      return undefined;
    }
    return { exec, pool };
  }

  /** Queues one run of a captured graph. */
  launchGraph(graph: DeviceGraph): void {
    this.driver.graphLaunch(graph.exec, this.stream);
  }

  /** Destroys a captured graph and gives its pool's memory to the allocator (in stream order: safe while it runs). */
  destroyGraph(graph: DeviceGraph): void {
    this.driver.graphExecDestroy(graph.exec);
    this.allocator.freePool(graph.pool);
  }

  /** Waits for all queued work. */
  synchronize(): void {
    this.driver.streamSynchronize(this.stream);
  }

  /** Milliseconds of device time `body`'s queued work takes (events around it; waits for the end). */
  time(body: () => void): number {
    const start = this.driver.eventCreate();
    const end = this.driver.eventCreate();
    this.driver.eventRecord(start, this.stream);
    body();
    this.driver.eventRecord(end, this.stream);
    try {
      return this.driver.elapsedMs(start, end);
    } finally {
      this.driver.eventDestroy(start);
      this.driver.eventDestroy(end);
    }
  }
}

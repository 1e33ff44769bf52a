// One CUDA device as the backend uses it: the driver and its primary context, one stream that all work is queued
// on, the caching allocator, NVRTC with the disk cache of compiled kernels, cuBLAS, and kernel launches.
//
// Opening it loads every library it needs up front, so `--device cuda` on a machine that lacks one fails at once,
// with the one line that names the missing library (libraries.ts).
import { CachingAllocator, type DeviceBlock } from './allocator.ts';
import { CompileCache, defaultCacheDir } from './compile-cache.ts';
import { Cublas } from './cublas.ts';
import { CudaDriver, type DeviceInfo } from './driver.ts';
import { CudaCallError, loadKoffi, type Handle } from './ffi.ts';
import { KernelArgs, KernelModules, type ArgKind, type Kernel, type KernelFile } from './launch.ts';
import type { SearchContext } from './libraries.ts';
import { Nvrtc } from './nvrtc.ts';
import { fail } from '../../core/errors.ts';

/** Threads per block of the elementwise kernels. */
const ELEMENTWISE_BLOCK = 256;
/** Blocks per multiprocessor the elementwise grids stop at (the kernels stride over the rest). */
const ELEMENTWISE_BLOCKS_PER_SM = 16;

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

  private constructor(
    readonly driver: CudaDriver,
    readonly info: DeviceInfo,
    readonly stream: Handle,
    readonly nvrtc: Nvrtc,
    readonly cublas: Cublas,
    readonly compileCache: CompileCache,
  ) {
    this.allocator = new CachingAllocator({ alloc: (bytes) => driver.memAlloc(bytes), free: (p) => driver.memFree(p) });
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
    if (info.computeCapability < 75) {
      fail('device', `${info.name} (sm_${info.computeCapability}) is older than moets supports (sm_75 and newer); use --device cpu`);
    }
    const nvrtc = Nvrtc.load(opts.search);
    const cublas = Cublas.load(stream, opts.search);
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

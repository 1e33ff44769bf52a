// Bindings to libnvrtc (CUDA's run-time compiler) through koffi: CUDA C source → cubin for one GPU architecture.
// Every call is checked; a failed compile throws an NvrtcCompileError that carries the compiler's log.
import { CudaCallError, bindFirst, loadKoffi, type Handle, type NativeFunction } from './ffi.ts';
import { CUDA_LIBRARIES, findLibrary, type SearchContext } from './libraries.ts';

const FUNCTIONS = {
  version: 'int nvrtcVersion(_Out_ int *major, _Out_ int *minor)',
  errorString: 'const char *nvrtcGetErrorString(int result)',
  createProgram: 'int nvrtcCreateProgram(_Out_ nvrtcProgram *program, const char *source, const char *name, ' +
    'int headerCount, const char **headers, const char **includeNames)',
  compileProgram: 'int nvrtcCompileProgram(nvrtcProgram program, int optionCount, const char **options)',
  destroyProgram: 'int nvrtcDestroyProgram(_Inout_ nvrtcProgram *program)',
  logSize: 'int nvrtcGetProgramLogSize(nvrtcProgram program, _Out_ size_t *bytes)',
  log: 'int nvrtcGetProgramLog(nvrtcProgram program, void *log)',
  cubinSize: 'int nvrtcGetCUBINSize(nvrtcProgram program, _Out_ size_t *bytes)',
  cubin: 'int nvrtcGetCUBIN(nvrtcProgram program, void *cubin)',
} as const;

type Fn = Record<keyof typeof FUNCTIONS, NativeFunction>;

/** A compile that failed: the message names the source and architecture, `log` is NVRTC's full output. */
export class NvrtcCompileError extends Error {
  constructor(readonly sourceName: string, readonly options: readonly string[], readonly log: string, codeName: string) {
    super(`nvrtcCompileProgram(${sourceName}, ${options.join(' ')}) failed: ${codeName}\n${log.trim()}`);
    this.name = 'NvrtcCompileError';
  }
}

export class Nvrtc {
  /** "13.0": the compiler's version, part of every compiled kernel's cache key. */
  readonly version: string;

  private constructor(readonly path: string, private readonly fn: Fn) {
    const major = [0];
    const minor = [0];
    this.check('nvrtcVersion', fn.version(major, minor));
    this.version = `${major[0]}.${minor[0]}`;
  }

  static load(ctx?: SearchContext): Nvrtc {
    const koffi = loadKoffi();
    const found = findLibrary(CUDA_LIBRARIES.nvrtc, (path) => koffi.load(path), ctx);
    const fn = {} as Fn;
    for (const [key, decl] of Object.entries(FUNCTIONS)) {
      const symbol = /(\w+)\(/.exec(decl)![1]!;
      fn[key as keyof Fn] = bindFirst(found.lib, [symbol], () => decl);
    }
    return new Nvrtc(found.path, fn);
  }

  /** Compiles `source` (named `name` in messages) with `options` (e.g. --gpu-architecture=sm_90) to a cubin. */
  compile(source: string, name: string, options: readonly string[]): Uint8Array {
    const out: unknown[] = [null];
    this.check('nvrtcCreateProgram', this.fn.createProgram(out, source, name, 0, null, null));
    const program = [out[0] as Handle];
    try {
      const result = Number(this.fn.compileProgram(program[0], options.length, [...options]));
      const log = this.programLog(program[0]!);
      if (result !== 0) throw new NvrtcCompileError(name, options, log, this.codeName(result));
      const size = [0];
      this.check('nvrtcGetCUBINSize', this.fn.cubinSize(program[0], size));
      const cubin = new Uint8Array(size[0]!);
      this.check('nvrtcGetCUBIN', this.fn.cubin(program[0], cubin));
      return cubin;
    } finally {
      this.fn.destroyProgram(program);
    }
  }

  private programLog(program: Handle): string {
    const size = [0];
    this.check('nvrtcGetProgramLogSize', this.fn.logSize(program, size));
    const log = new Uint8Array(size[0]!);
    this.check('nvrtcGetProgramLog', this.fn.log(program, log));
    return Buffer.from(log).toString('utf8').replace(/\0+$/, '');
  }

  private codeName(result: number): string {
    return String(this.fn.errorString(result) ?? `nvrtcResult ${result}`);
  }

  private check(call: string, result: unknown): void {
    if (result !== 0) throw new CudaCallError(call, Number(result), this.codeName(Number(result)), '');
  }
}

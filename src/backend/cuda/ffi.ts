// The FFI layer under the CUDA backend: koffi, loaded lazily (so CPU-only runs never touch the native addon),
// the opaque handle types the CUDA libraries use, and the error a failed CUDA call throws.
//
// koffi registers type names process-wide, so every handle type is declared here, once.
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import { fail, MoetsError } from '../../core/errors.ts';

export type KoffiModule = typeof Koffi;
export type KoffiLib = Koffi.IKoffiLib;
/** A native function bound by koffi: arguments and result as koffi converts them. */
export type NativeFunction = (...args: unknown[]) => unknown;

/** Opaque pointers handed out by the CUDA libraries (a koffi External each). */
export interface Handle { readonly __brand: 'CudaHandle' }

let koffi: KoffiModule | undefined;

/** koffi, with the CUDA handle types declared; a one-line device error when the addon cannot load here. */
export function loadKoffi(): KoffiModule {
  if (koffi) return koffi;
  let k: KoffiModule;
  try {
    k = createRequire(import.meta.url)('koffi') as KoffiModule;
  } catch (err) {
    return fail('device', `koffi (the FFI moets drives CUDA through) could not be loaded: ${firstLine(err)}; reinstall moets's dependencies (npm install)`);
  }
  for (const name of ['CUcontext', 'CUstream', 'CUmodule', 'CUfunction', 'CUevent', 'CUgraph', 'CUgraphExec', 'nvrtcProgram', 'cublasHandle_t']) {
    k.pointer(name, k.opaque());
  }
  return (koffi = k);
}

/** A failed driver, NVRTC or cuBLAS call: names the call and the library's name for the error. */
export class CudaCallError extends MoetsError {
  constructor(readonly call: string, readonly code: number, readonly codeName: string, detail: string) {
    super('device', `${call} failed: ${codeName}${detail ? ` (${detail})` : ''}`);
  }
}

/** Binds the first of `names` the library exports (versioned symbols: cuMemAlloc_v2 before cuMemAlloc). */
export function bindFirst(lib: KoffiLib, names: readonly string[], signature: (name: string) => string): NativeFunction {
  for (const name of names) {
    try {
      return lib.func(signature(name)) as NativeFunction;
    } catch {
      // not exported under this name: try the next
    }
  }
  return fail('device', `the CUDA library in use exports none of ${names.join(', ')}; it is too old for moets (use CUDA 12 or 13)`);
}

export function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0]!;
}

// Kernel launches: each kernel's argument kinds, the native block its argument values are written into for
// cuLaunchKernel, and the kernel modules (one per .cu file under kernels/), compiled through the disk cache and
// loaded once.
//
// cuLaunchKernel takes `void **params`, one pointer per argument to that argument's value. The values live in one
// native block of 8-byte slots and the pointers in another, both made once, so a launch writes a few numbers and
// makes one FFI call.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assert } from '../../core/errors.ts';
import type { CompileCache } from './compile-cache.ts';
import type { CudaDriver } from './driver.ts';
import type { Handle, KoffiModule } from './ffi.ts';

/** ptr: a device address; u64: a count; i32, f32, f64: a scalar. */
export type ArgKind = 'ptr' | 'u64' | 'i32' | 'f32' | 'f64';

export interface Kernel {
  readonly name: string;
  readonly fn: Handle;
  readonly args: readonly ArgKind[];
}

const MAX_ARGS = 24;
const TWO_32 = 2 ** 32;

/** The native argument block for cuLaunchKernel. */
export class KernelArgs {
  /** The native `void *[MAX_ARGS]` handed to cuLaunchKernel. */
  readonly pointers: unknown;
  private readonly values: DataView;

  constructor(koffi: KoffiModule) {
    const slots = koffi.alloc('uint64_t', MAX_ARGS);
    this.values = new DataView(koffi.view(slots, MAX_ARGS * 8));
    this.pointers = koffi.alloc('void *', MAX_ARGS);
    const table = new DataView(koffi.view(this.pointers, MAX_ARGS * 8));
    const base = koffi.address(slots);
    for (let i = 0; i < MAX_ARGS; i++) table.setBigUint64(i * 8, base + BigInt(i * 8), true);
  }

  /** Writes the values of one launch. */
  write(kernel: Kernel, values: readonly number[]): void {
    const kinds = kernel.args;
    assert(values.length === kinds.length, `${kernel.name} takes ${kinds.length} arguments, got ${values.length}`);
    const v = this.values;
    for (let i = 0; i < kinds.length; i++) {
      const x = values[i]!;
      const o = i * 8;
      switch (kinds[i]) {
        case 'ptr':
        case 'u64':
          v.setUint32(o, x >>> 0, true);
          v.setUint32(o + 4, Math.floor(x / TWO_32), true);
          break;
        case 'i32':
          v.setInt32(o, x, true);
          break;
        case 'f32':
          v.setFloat32(o, x, true);
          break;
        case 'f64':
          v.setFloat64(o, x, true);
          break;
      }
    }
  }
}

/** A kernel source file under kernels/ and how it is built. */
export interface KernelFile {
  /** File name under kernels/, e.g. elementwise.cu. */
  file: string;
  /** Build for the arch-specific target (sm_90a): needed by wgmma and setmaxnreg. */
  archSpecific?: boolean;
}

/** Kernel modules: compiled (or read from the cache) and loaded on first use. */
export class KernelModules {
  private readonly modules = new Map<string, Handle>();
  private readonly kernels = new Map<string, Kernel>();

  constructor(private readonly driver: CudaDriver, private readonly cache: CompileCache, private readonly computeCapability: number) {}

  kernel(source: KernelFile, name: string, args: readonly ArgKind[]): Kernel {
    const key = `${source.file}:${name}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      kernel = { name, fn: this.driver.moduleFunction(this.module(source), name), args };
      this.kernels.set(key, kernel);
    }
    return kernel;
  }

  private module(source: KernelFile): Handle {
    let module = this.modules.get(source.file);
    if (!module) {
      const text = kernelSource(source.file);
      const arch = `sm_${this.computeCapability}${source.archSpecific ? 'a' : ''}`;
      const { cubin } = this.cache.compile({ source: text, name: source.file, arch, options: ['--std=c++17', '-lineinfo'] });
      module = this.driver.moduleLoad(cubin, source.file);
      this.modules.set(source.file, module);
    }
    return module;
  }
}

/**
 * A kernel file's text with its `#include "x.cuh"` lines replaced by those files from kernels/ (NVRTC gets one
 * self-contained source, so the cache key covers the headers too; nvcc resolves the same includes by itself).
 */
export function kernelSource(file: string): string {
  const text = readFileSync(fileURLToPath(new URL(`./kernels/${file}`, import.meta.url)), 'utf8');
  return text.replace(/^#include "([\w.-]+\.cuh)"$/gm, (_, header: string) => kernelSource(header).replace(/^#pragma once$/m, ''));
}

// Picks the backend for a device name: 'cpu' (the reference), 'cuda' (an NVIDIA GPU through the CUDA libraries,
// src/backend/cuda) or 'auto'. One backend of each kind per process.
//
// 'cuda' fails with one line when CUDA cannot start here (no driver, a library missing: the line names it and the
// variable that points moets at it).
// 'auto' is the CPU until the CUDA backend runs every op (NOT_YET_ON_CUDA is empty), so a GPU machine never starts
// a model that would stop at its first op without a kernel. From then on 'auto' is CUDA when it starts, else the
// CPU: silently where there is no NVIDIA driver at all (no libcuda: a machine without a GPU, where the CPU is what
// anyone expects), and with one line on stderr where there is a driver but CUDA failed (a GPU machine whose user
// should learn why it runs on the CPU).
import { MoetsError } from '../core/errors.ts';
import type { Backend, DeviceName } from './backend.ts';
import { CpuBackend } from './cpu/cpu-backend.ts';
import { CudaBackend, NOT_YET_ON_CUDA } from './cuda/cuda-backend.ts';
import { LibraryNotFoundError } from './cuda/libraries.ts';

export type DeviceChoice = DeviceName | 'auto';

let cpu: Backend | undefined;
let cuda: Backend | undefined;
let auto: Backend | undefined;

export function getBackend(choice: DeviceChoice = 'cpu'): Backend {
  if (choice === 'cpu') return cpuBackend();
  if (choice === 'cuda') return (cuda ??= CudaBackend.create());
  return (auto ??= chooseAuto({
    cudaReady: NOT_YET_ON_CUDA.length === 0,
    openCuda: () => (cuda ??= CudaBackend.create()),
    cpu: cpuBackend,
    warn: (line) => process.stderr.write(`${line}\n`),
  }));
}

function cpuBackend(): Backend {
  return (cpu ??= new CpuBackend());
}

export interface AutoChoice {
  /** Whether the CUDA backend runs every op. */
  cudaReady: boolean;
  openCuda(): Backend;
  cpu(): Backend;
  /** Says, once, why auto fell back to the CPU on a machine with an NVIDIA driver. */
  warn(line: string): void;
}

/** What 'auto' picks (see the top of this file). Errors other than "CUDA cannot run here" are thrown. */
export function chooseAuto(c: AutoChoice): Backend {
  if (!c.cudaReady) return c.cpu();
  try {
    return c.openCuda();
  } catch (err) {
    if (!(err instanceof MoetsError) || err.kind !== 'device') throw err;
    const noDriver = err instanceof LibraryNotFoundError && err.library === 'cuda' && !err.viaEnv;
    if (!noDriver) c.warn(`moets: --device auto is using the CPU: ${err.message}`);
    return c.cpu();
  }
}

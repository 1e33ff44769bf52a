// Picks the backend for a device name. The CUDA backend registers here when it exists.
import { fail } from '../core/errors.ts';
import type { Backend, DeviceName } from './backend.ts';
import { CpuBackend } from './cpu/cpu-backend.ts';

export type DeviceChoice = DeviceName | 'auto';

let cpu: CpuBackend | undefined;

export function getBackend(choice: DeviceChoice = 'cpu'): Backend {
  if (choice === 'cpu' || choice === 'auto') return (cpu ??= new CpuBackend());
  return fail('device', `device '${choice}' is not available in this build of moets; use --device cpu`);
}

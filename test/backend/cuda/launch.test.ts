// The native argument block of kernel launches (src/backend/cuda/launch.ts), read back through koffi without a
// GPU: cuLaunchKernel gets `void **params`, params[i] pointing at argument i's value in the C layout of its kind.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadKoffi, type Handle } from '../../../src/backend/cuda/ffi.ts';
import { KernelArgs, type ArgKind, type Kernel } from '../../../src/backend/cuda/launch.ts';

const koffi = loadKoffi();

/** The value params[i] points at, decoded as `type`. */
function argument(args: KernelArgs, i: number, type: string): unknown {
  const pointers = koffi.decode(args.pointers, 'void *', i + 1) as unknown[];
  return koffi.decode(pointers[i], type);
}

function kernel(args: readonly ArgKind[]): Kernel {
  return { name: 'test_kernel', fn: {} as Handle, args };
}

test('kernel arguments: device pointers past 2^32, counts, i32, f32 and f64 in their C layout', () => {
  const args = new KernelArgs(koffi);
  const k = kernel(['ptr', 'ptr', 'u64', 'i32', 'f32', 'f64', 'u64']);
  const values = [0x7f12_3456_789a, 0x2_0000_0000, 5_000_000_001, -7, 1.5, 0.1, 0];
  args.write(k, values);
  assert.equal(argument(args, 0, 'uint64_t'), 0x7f12_3456_789a);
  assert.equal(argument(args, 1, 'uint64_t'), 0x2_0000_0000);
  assert.equal(argument(args, 2, 'uint64_t'), 5_000_000_001);
  assert.equal(argument(args, 3, 'int32_t'), -7);
  assert.equal(argument(args, 4, 'float'), 1.5);
  assert.equal(argument(args, 5, 'double'), 0.1);
  assert.equal(argument(args, 6, 'uint64_t'), 0);
  args.write(kernel(['i32', 'f32']), [123, -2.25]);
  assert.deepEqual([argument(args, 0, 'int32_t'), argument(args, 1, 'float')], [123, -2.25], 'a later launch overwrites the values');
});

test('kernel arguments: a launch with the wrong number of values is a bug', () => {
  const args = new KernelArgs(koffi);
  assert.throws(() => args.write(kernel(['ptr', 'u64']), [1]), /test_kernel takes 2 arguments, got 1/);
});

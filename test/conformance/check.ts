// Shared pieces of the conformance suite: per-dtype tolerances, comparisons whose messages carry the seed,
// seeded per-case random inputs, and tensors whose stored (rounded) values the references use.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Backend } from '../../src/backend/backend.ts';
import type { FloatDType } from '../../src/core/dtype.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { Rng } from '../util/random.ts';
import { bf16BitsToNumber, f16BitsToNumber, toBf16Bits, toF16Bits } from './reference.ts';

/**
 * How far a float result may be from the float64 reference, by storage dtype:
 * rel bounds ‖actual − expected‖ / ‖expected‖; abs bounds max |actual − expected| / max(1, max |expected|).
 * f32 allows a few ulps of accumulated f32 rounding; bf16 (8-bit mantissa) and f16 (11-bit) allow the rounding
 * of inputs already applied plus the rounding of outputs and of intermediates a backend keeps in that dtype.
 */
export const TOLERANCE: Record<FloatDType, { rel: number; abs: number }> = {
  f32: { rel: 1e-5, abs: 1e-5 },
  bf16: { rel: 1e-2, abs: 3e-2 },
  f16: { rel: 5e-3, abs: 5e-3 },
};

export const FLOAT_DTYPES: readonly FloatDType[] = ['f32', 'bf16', 'f16'];

/** What every case gets: the backend under test, the dtypes to run float ops in, and which cases to skip. */
export interface SuiteContext {
  backend(): Backend;
  dtypes: readonly FloatDType[];
  skip: Readonly<Record<string, string>>;
  baseSeed: number;
}

/** A seed per case name, so each case draws fresh inputs and a failure names the seed that reproduces it. */
export function seedFor(ctx: SuiteContext, name: string): number {
  let h = 0x811c9dc5 ^ ctx.baseSeed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Registers one case; `name` is also the key of opts.skip. The body gets a seeded Rng and a tag for messages. */
export function conformanceCase(
  ctx: SuiteContext, name: string, body: (rng: Rng, tag: string, b: Backend) => Promise<void> | void,
): void {
  const reason = ctx.skip[name];
  it(name, reason === undefined ? {} : { skip: reason }, async () => {
    const seed = seedFor(ctx, name);
    await body(new Rng(seed), `[${name}, seed ${seed}]`, ctx.backend());
  });
}

/** Fails unless actual is within the dtype's tolerance of expected (relative norm and scaled max-abs). */
export function expectClose(
  actual: ArrayLike<number>, expected: ArrayLike<number>, dtype: FloatDType, tag: string,
  tol: { rel: number; abs: number } = TOLERANCE[dtype],
): void {
  assert.equal(actual.length, expected.length, `${tag} length`);
  let diff2 = 0;
  let norm2 = 0;
  let maxDiff = 0;
  let maxRef = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= maxDiff)) { maxDiff = d; worst = i; }
    diff2 += d * d;
    norm2 += expected[i]! ** 2;
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  const rel = Math.sqrt(diff2) / Math.max(Math.sqrt(norm2), 1e-30);
  const abs = maxDiff / Math.max(1, maxRef);
  const where = `at ${worst}: got ${actual[worst]}, want ${expected[worst]}`;
  assert.ok(rel <= tol.rel, `${tag} ${dtype}: relative error ${rel.toExponential(2)} > ${tol.rel} (${where})`);
  assert.ok(abs <= tol.abs, `${tag} ${dtype}: max abs error ${abs.toExponential(2)} (scaled) > ${tol.abs} (${where})`);
}

/** Fails unless the two arrays hold the same numbers (NaN equal to NaN, -0 unequal to 0). */
export function expectExact(actual: ArrayLike<number>, expected: ArrayLike<number>, tag: string): void {
  assert.equal(actual.length, expected.length, `${tag} length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], expected[i]), `${tag}: element ${i} is ${actual[i]}, want ${expected[i]}`);
  }
}

/** The bits that store `values` in a float dtype (rounded to nearest even), and the values they hold. */
export function quantize(values: ArrayLike<number>, dtype: FloatDType): { stored: Float32Array | Uint16Array; held: Float64Array } {
  const held = new Float64Array(values.length);
  if (dtype === 'f32') {
    const stored = Float32Array.from(values);
    held.set(stored);
    return { stored, held };
  }
  const [encode, decode] = dtype === 'bf16' ? [toBf16Bits, bf16BitsToNumber] : [toF16Bits, f16BitsToNumber];
  const stored = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    stored[i] = encode(values[i]!);
    held[i] = decode(stored[i]!);
  }
  return { stored, held };
}

/** A tensor of `dtype` holding `values` rounded to it; `held` is what it stores, for the reference. */
export function floatTensor(b: Backend, values: ArrayLike<number>, shape: number[], dtype: FloatDType): { t: Tensor; held: Float64Array } {
  const { stored, held } = quantize(values, dtype);
  return { t: b.upload(stored, shape, dtype), held };
}

/** A random normal tensor (std given) of `dtype`. */
export function randomTensor(b: Backend, rng: Rng, shape: number[], dtype: FloatDType, std = 1): { t: Tensor; held: Float64Array } {
  const count = shape.reduce((n, d) => n * d, 1);
  return floatTensor(b, rng.normals(count, std), shape, dtype);
}

export function indexTensor(b: Backend, values: ArrayLike<number>, shape: number[] = [values.length]): Tensor {
  return b.upload(Int32Array.from(values), shape, 'i32');
}

export async function readFloat(t: Tensor, tag: string): Promise<Float32Array> {
  const values = await t.read();
  assert.ok(values instanceof Float32Array, `${tag}: read() of ${t} should give a Float32Array`);
  return values;
}

export async function readIndex(t: Tensor, tag: string): Promise<Int32Array> {
  const values = await t.read();
  assert.ok(values instanceof Int32Array, `${tag}: read() of ${t} should give an Int32Array`);
  return values;
}

/** Asserts a tensor's dtype and shape. */
export function expectTensor(t: Tensor, dtype: string, shape: readonly number[], tag: string): void {
  assert.equal(t.dtype, dtype, `${tag}: dtype of ${t}`);
  assert.deepEqual([...t.shape], [...shape], `${tag}: shape of ${t}`);
}

// Comparing float arrays in tests: relative error ‖a − b‖ / ‖b‖ (what the parity targets are stated in).

export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i]! - expected[i]!;
    diff += d * d;
    norm += expected[i]! * expected[i]!;
  }
  if (Number.isNaN(diff)) return Infinity;
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

// The CLI's value parsers, in process: what each accepts (and the value it gives) and what it rejects as a
// usage error naming the flag and the text given. The real CLI's handling of these errors is in bad-flags.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MoetsError } from '../../src/core/errors.ts';
import { decimal, parseTokenIds, probability, resolveDevice, wholeNumber } from '../../src/cli/options.ts';

function assertUsageError(run: () => unknown, message: RegExp): void {
  assert.throws(run, (e: unknown) => e instanceof MoetsError && e.kind === 'usage' && message.test(e.message));
}

test('wholeNumber accepts digits only, within range', () => {
  const maxNew = wholeNumber('--max-new-tokens', 1, 64);
  assert.equal(maxNew('64'), 64);
  assert.equal(maxNew(' 7 '), 7);
  assert.equal(maxNew('+3'), 3);
  for (const bad of ['-1', '0', '1.5', '1e3', '', 'abc', '0x10', '12abc', '99999999999999999999']) {
    assertUsageError(() => maxNew(bad), new RegExp(`^--max-new-tokens must be a whole number ≥ 1, got '${bad}'; pass e\\.g\\. --max-new-tokens 64$`));
  }
  const seed = wholeNumber('--seed', 0, 42, 2 ** 32 - 1);
  assert.equal(seed('0'), 0);
  assert.equal(seed('4294967295'), 4294967295);
  assertUsageError(() => seed('4294967296'), /^--seed must be a whole number from 0 to 4294967295/);
});

test('decimal accepts finite numbers in range', () => {
  const temperature = decimal('--temperature', 0, 100, '0.7');
  assert.equal(temperature('0'), 0);
  assert.equal(temperature('0.7'), 0.7);
  assert.equal(temperature('.5'), 0.5);
  assert.equal(temperature('1e-1'), 0.1);
  assert.equal(temperature('2.'), 2);
  for (const bad of ['abc', '', 'NaN', 'Infinity', '-0.1', '100.5', '1,5', '0.7x']) {
    assertUsageError(() => temperature(bad), /^--temperature must be a number from 0 to 100, got '.*'; pass e\.g\. --temperature 0\.7$/);
  }
});

test('probability is in (0, 1]', () => {
  const topP = probability('--top-p');
  assert.equal(topP('1'), 1);
  assert.equal(topP('0.95'), 0.95);
  assertUsageError(() => topP('0'), /^--top-p must be greater than 0 and at most 1, got '0'/);
  assertUsageError(() => topP('1.01'), /^--top-p must be a number from 0 to 1, got '1.01'/);
});

test('parseTokenIds reads comma-separated ids ≥ 0', () => {
  assert.deepEqual(Array.from(parseTokenIds('3,1,4')), [3, 1, 4]);
  assert.deepEqual(Array.from(parseTokenIds(' 3, 0 ,2147483647')), [3, 0, 2147483647]);
  assertUsageError(() => parseTokenIds('3,,4'), /^--ids item 2 is empty \(got '3,,4'\); /);
  assertUsageError(() => parseTokenIds(''), /^--ids item 1 is empty/);
  assertUsageError(() => parseTokenIds('3,-1'), /^--ids item 2 '-1' is not a token id/);
  assertUsageError(() => parseTokenIds('2147483648'), /^--ids item 1 '2147483648' is not a token id/);
  assertUsageError(() => parseTokenIds('1.0'), /^--ids item 1 '1.0' is not a token id/);
});

test('resolveDevice: --device, else MOETS_DEVICE, else auto', () => {
  assert.equal(resolveDevice(undefined, undefined), 'auto');
  assert.equal(resolveDevice(undefined, ''), 'auto');
  assert.equal(resolveDevice(undefined, 'cuda'), 'cuda');
  assert.equal(resolveDevice('CPU', 'cuda'), 'cpu');
  assertUsageError(() => resolveDevice('tpu', 'cpu'), /^unknown device 'tpu' \(from --device\); use cpu, cuda or auto$/);
  assertUsageError(() => resolveDevice(undefined, 'gpu'), /^unknown device 'gpu' \(from MOETS_DEVICE\)/);
});

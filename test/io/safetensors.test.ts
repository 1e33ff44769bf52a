// Safetensors read/write: byte-exact against the Rust reference's own test vectors, round trips over dtypes and
// shapes, every corruption the reference rejects, reads limited to one tensor, and Python-written fixtures.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { MoetsError } from '../../src/core/errors.ts';
import { SafetensorsFile, moetsDType, writeSafetensors, type SafetensorsDType } from '../../src/io/safetensors.ts';

const tmp = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'moets-safetensors-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileCounter = 0;
const freshPath = (): string => nodePath.join(tmp, `t${fileCounter++}.safetensors`);

/** A file made of: u64 LE header length (or `lengthOverride`), the header text as UTF-8, then `data`. */
function writeRaw(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): string {
  const headerBytes = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(headerBytes.length));
  const path = freshPath();
  fs.writeFileSync(path, Buffer.concat([prefix, headerBytes, data]));
  return path;
}

/** Deterministic bytes (a small LCG), so round trips compare against known, non-trivial data. */
function bytes(count: number, seed: number): Uint8Array {
  const out = new Uint8Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function assertFormatError(path: string, expectedPart: RegExp): void {
  assert.throws(() => SafetensorsFile.open(path), (error: unknown) => {
    assert.ok(error instanceof MoetsError, `expected a MoetsError, got ${String(error)}`);
    assert.equal(error.kind, 'format');
    assert.ok(error.message.startsWith(`${path}: `), `message should name the file: ${error.message}`);
    assert.match(error.message, expectedPart);
    assert.ok(!error.message.includes('\n'), 'one line');
    return true;
  });
}

describe('writeSafetensors matches the Rust reference writer byte for byte', () => {
  it('one F32 tensor (safetensors tensor.rs test_serialization)', () => {
    const path = freshPath();
    writeSafetensors(path, [{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f32Bytes([0, 1, 2, 3, 4, 5]) }]);
    const expected = [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ];
    assert.deepEqual([...fs.readFileSync(path)], expected);
  });

  it('pads the header with spaces to a multiple of 8 (test_serialization_forced_alignement)', () => {
    const path = freshPath();
    writeSafetensors(path, [{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f32Bytes([0, 1, 2, 3, 4, 5]) }]);
    const expected = [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ];
    assert.deepEqual([...fs.readFileSync(path)], expected);
  });

  it('no tensors, with and without metadata (test_empty)', () => {
    const bare = freshPath();
    writeSafetensors(bare, []);
    assert.deepEqual([...fs.readFileSync(bare)], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMetadata = freshPath();
    writeSafetensors(withMetadata, [], { framework: 'pt' });
    assert.deepEqual([...fs.readFileSync(withMetadata)], [
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    assert.equal(SafetensorsFile.open(bare).tensors.size, 0);
    assert.deepEqual(SafetensorsFile.open(withMetadata).metadata, { framework: 'pt' });
  });

  it('header length is always a multiple of 8, the padding is spaces, and the data follows it', () => {
    for (let nameLength = 1; nameLength <= 16; nameLength++) {
      const path = freshPath();
      const name = 'w'.repeat(nameLength);
      writeSafetensors(path, [{ name, dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) }]);
      const file = fs.readFileSync(path);
      const n = Number(file.readBigUInt64LE(0));
      const json = `{"${name}":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}`;
      assert.equal(n, Math.ceil(json.length / 8) * 8);
      assert.equal(file.subarray(8, 8 + json.length).toString(), json);
      assert.ok(file.subarray(8 + json.length, 8 + n).every((b) => b === 0x20));
      assert.deepEqual([...file.subarray(8 + n)], [7, 8, 9]);
    }
  });
});

describe('SafetensorsFile round trip', () => {
  const cases: { name: string; dtype: SafetensorsDType; shape: number[]; byteLength: number }[] = [
    { name: 'model.layers.0.mlp.experts.0.gate_proj.weight', dtype: 'BF16', shape: [3, 5], byteLength: 30 },
    { name: 'norm', dtype: 'F32', shape: [7], byteLength: 28 },
    { name: 'half', dtype: 'F16', shape: [2, 1, 3], byteLength: 12 },
    { name: 'ids', dtype: 'I32', shape: [4], byteLength: 16 },
    { name: 'empty', dtype: 'F32', shape: [0, 4], byteLength: 0 },
    { name: 'scalar', dtype: 'F64', shape: [], byteLength: 8 },
    { name: 'big_ints', dtype: 'I64', shape: [2, 2], byteLength: 32 },
    { name: 'mask', dtype: 'BOOL', shape: [5], byteLength: 5 },
    { name: 'packed_fp4', dtype: 'F4', shape: [2, 6], byteLength: 6 },
    { name: 'fp6', dtype: 'F6_E2M3', shape: [4], byteLength: 3 },
    { name: 'fp8', dtype: 'F8_E4M3', shape: [3, 3], byteLength: 9 },
    { name: 'scales', dtype: 'F8_E8M0', shape: [2], byteLength: 2 },
    { name: 'complex', dtype: 'C64', shape: [2], byteLength: 16 },
    { name: '0', dtype: 'U16', shape: [1], byteLength: 2 },   // an integer-like name keeps its place
    { name: 'ünïcode ✓ "quoted"\\', dtype: 'U8', shape: [1, 1], byteLength: 1 },
  ];
  const data = cases.map((c, i) => bytes(c.byteLength, i + 1));
  const metadata = { format: 'pt', note: 'line\nbreak "quoted" ✓' };
  const path = freshPath();
  writeSafetensors(path, cases.map((c, i) => ({ name: c.name, dtype: c.dtype, shape: c.shape, data: data[i]! })), metadata);

  it('reads back names in order, dtypes, shapes, absolute offsets and metadata', () => {
    const file = SafetensorsFile.open(path);
    const headerLength = Number(fs.readFileSync(path).readBigUInt64LE(0));
    let offset = 8 + headerLength;
    assert.deepEqual([...file.tensors.keys()], cases.map((c) => c.name));
    for (const c of cases) {
      assert.deepEqual(file.tensors.get(c.name), { ...c, byteOffset: offset });
      offset += c.byteLength;
    }
    assert.equal(offset, fs.statSync(path).size);
    assert.equal(file.fileBytes, offset);
    assert.deepEqual(file.metadata, metadata);
    file.close();
  });

  it('readBytes returns each tensor byte-exact, and f32 values survive', () => {
    const file = SafetensorsFile.open(path);
    cases.forEach((c, i) => assert.deepEqual(file.readBytes(c.name), data[i]));
    file.close();
    const valuesPath = freshPath();
    const values = [1.5, -2.25, 3e-8, 65504, -0];
    writeSafetensors(valuesPath, [{ name: 'v', dtype: 'F32', shape: [5], data: f32Bytes(values) }]);
    const read = SafetensorsFile.open(valuesPath).readBytes('v');
    assert.deepEqual([...new Float32Array(read.buffer, read.byteOffset, 5)], values.map(Math.fround));
  });

  it('takes the header in any key order and lays tensors out by offset', () => {
    const header = '{"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},' +
      '"__metadata__":{"k":"v"},"a":{"shape":[2],"data_offsets":[0,4],"dtype":"BF16"}}';
    const file = SafetensorsFile.open(writeRaw(header, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    assert.deepEqual([...file.tensors.keys()], ['a', 'b']);
    assert.equal(file.info('b').byteOffset, 8 + header.length + 4);
    assert.deepEqual([...file.readBytes('b')], [5, 6, 7, 8]);
    assert.deepEqual(file.metadata, { k: 'v' });
  });

  it('reports an unknown tensor name as not-found, naming the file', () => {
    const file = SafetensorsFile.open(path);
    assert.throws(() => file.readBytes('nope'), (e: unknown) =>
      e instanceof MoetsError && e.kind === 'not-found' && e.message.includes(path) && e.message.includes("'nope'"));
    file.close();
  });

  it('a missing file is not-found', () => {
    const missing = nodePath.join(tmp, 'missing.safetensors');
    assert.throws(() => SafetensorsFile.open(missing), (e: unknown) =>
      e instanceof MoetsError && e.kind === 'not-found' && e.message.startsWith(missing));
  });

  it('maps safetensors dtypes onto moets dtypes', () => {
    assert.equal(moetsDType('F32'), 'f32');
    assert.equal(moetsDType('BF16'), 'bf16');
    assert.equal(moetsDType('F16'), 'f16');
    assert.equal(moetsDType('I32'), 'i32');
    for (const other of ['F64', 'I64', 'U8', 'F8_E4M3', 'F4', 'BOOL'] as const) assert.equal(moetsDType(other), undefined);
  });
});

describe('writeSafetensors rejects bad input', () => {
  const bad = (tensors: Parameters<typeof writeSafetensors>[1], part: RegExp): void => {
    const path = freshPath();
    assert.throws(() => writeSafetensors(path, tensors), (e: unknown) =>
      e instanceof MoetsError && e.kind === 'input' && part.test(e.message));
    assert.equal(fs.existsSync(path), false);
  };
  it('data whose length does not match dtype × shape', () => {
    bad([{ name: 'x', dtype: 'F32', shape: [2, 2], data: new Uint8Array(15) }], /needs 16 bytes but 15/);
  });
  it('a name given twice, or the reserved __metadata__', () => {
    const t = { name: 'x', dtype: 'U8' as const, shape: [1], data: new Uint8Array(1) };
    bad([t, t], /twice/);
    bad([{ ...t, name: '__metadata__' }], /reserved/);
  });
  it('leaves no temporary file behind after a write', () => {
    const dir = fs.mkdtempSync(nodePath.join(tmp, 'clean-'));
    writeSafetensors(nodePath.join(dir, 'a.safetensors'), [{ name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array(1) }]);
    assert.deepEqual(fs.readdirSync(dir), ['a.safetensors']);
  });
});

describe('corrupt files: one format error that names the file', () => {
  const entry = (dtype: string, shape: unknown, offsets: unknown): string =>
    JSON.stringify({ dtype, shape, data_offsets: offsets });
  const twoF32 = new Uint8Array(8);

  it('shorter than the 8-byte length prefix', () => {
    const empty = freshPath();
    fs.writeFileSync(empty, new Uint8Array(0));
    assertFormatError(empty, /0 bytes, fewer than the 8/);
    const five = freshPath();
    fs.writeFileSync(five, new Uint8Array(5));
    assertFormatError(five, /5 bytes, fewer than the 8/);
  });

  it('header length over the 100,000,000-byte limit, up to 2^64 - 1', () => {
    assertFormatError(writeRaw('{}', undefined, 100_000_001n), /header length 100000001 is over the 100000000-byte limit/);
    assertFormatError(writeRaw('{}', undefined, 2n ** 64n - 1n), /18446744073709551615 is over/);
  });

  it('a Git LFS pointer instead of the weights', () => {
    const path = freshPath();
    fs.writeFileSync(path, 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n');
    assertFormatError(path, /Git LFS pointer.*git lfs pull/);
  });

  it('header longer than the file', () => {
    assertFormatError(writeRaw('{}', undefined, 100n), /truncated: the header says it is 100 bytes long but the file has only 2/);
  });

  it('header that is not UTF-8, not starting with {, not JSON, or not an object', () => {
    assertFormatError(writeRaw(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/);
    assertFormatError(writeRaw(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), /does not start with '\{'/);   // BOM
    assertFormatError(writeRaw(' {}'), /does not start with '\{'/);
    assertFormatError(writeRaw('[]'), /does not start with '\{'/);
    assertFormatError(writeRaw('{"a":'), /not valid JSON/);
    assertFormatError(writeRaw('{}\0\0'), /not valid JSON/);
  });

  it('entries without a valid dtype, shape or data_offsets', () => {
    const cases: [string, RegExp][] = [
      ['{"x":5}', /'x' has header entry number 5/],
      ['{"x":{"shape":[2],"data_offsets":[0,8]}}', /'x' has no dtype/],
      [`{"x":${entry('F31', [2], [0, 8])}}`, /unknown dtype "F31"/],
      [`{"x":${entry('F32', 2, [0, 8])}}`, /shape 2, not a list/],
      [`{"x":${entry('F32', [-2], [0, 8])}}`, /shape \[-2\]/],
      [`{"x":${entry('F32', [1.5], [0, 8])}}`, /shape \[1.5\]/],
      [`{"x":${entry('F32', [2], [0, 8, 9])}}`, /data_offsets \[0,8,9\]/],
      [`{"x":${entry('F32', [2], [-8, 0])}}`, /data_offsets \[-8,0\]/],
      [`{"x":${entry('F32', [2], ['0', '8'])}}`, /data_offsets \["0","8"\]/],
      [`{"x":${entry('F32', [2], [0, 9007199254740993])}}`, /data_offsets/],
    ];
    for (const [header, part] of cases) assertFormatError(writeRaw(header, twoF32), part);
  });

  it('data_offsets with begin after end', () => {
    assertFormatError(writeRaw(`{"x":${entry('F32', [2], [8, 0])}}`, twoF32), /\[8, 0\] whose begin is after its end/);
  });

  it('offsets not contiguous from 0: a gap, an overlap, a late start', () => {
    const gap = `{"a":${entry('F32', [1], [0, 4])},"b":${entry('F32', [1], [8, 12])}}`;
    assertFormatError(writeRaw(gap, new Uint8Array(12)), /data bytes 4..8 belong to no tensor \(a gap before 'b'\)/);
    const overlap = `{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [1], [4, 8])}}`;
    assertFormatError(writeRaw(overlap, twoF32), /'b' \(bytes 4..8\) overlaps 'a' \(bytes 0..8\)/);
    assertFormatError(writeRaw(`{"a":${entry('F32', [1], [4, 8])}}`, twoF32), /data bytes 0..4 belong to no tensor/);
  });

  it('byte length that does not match dtype × shape', () => {
    assertFormatError(writeRaw(`{"x":${entry('F32', [2], [0, 4])}}`, new Uint8Array(4)),
      /'x' is F32 \[2\] = 8 bytes but its data_offsets \[0, 4\] span 4 bytes/);
    assertFormatError(writeRaw(`{"x":${entry('F4', [3], [0, 2])}}`, new Uint8Array(2)), /F4 \[3\].*whole number of bytes/);
  });

  it('shapes whose byte count overflows (checked arithmetic)', () => {
    const huge = 2 ** 30;
    assertFormatError(writeRaw(`{"x":${entry('U8', [huge, huge, huge], [0, 0])}}`), /too many elements/);
    // 2^51 elements × 8 bytes overflows only in the final multiplication
    assertFormatError(writeRaw(`{"x":${entry('F64', [2 ** 51], [0, 0])}}`), /too many elements/);
    // the reference folds left to right, so an early overflow wins over a later zero
    assertFormatError(writeRaw(`{"x":${entry('U8', [huge, huge, huge, 0], [0, 0])}}`), /too many elements/);
  });

  it('tensors that end past the data (truncated) or before it (trailing bytes)', () => {
    const path = writeRaw(`{"x":${entry('U8', [4096], [0, 4096])}}`, new Uint8Array(1000));
    assertFormatError(path, /truncated: the header says tensor 'x' ends at data byte 4096 but the file has 1000 bytes of data; .*download it again/);
    assertFormatError(writeRaw(`{"x":${entry('U8', [4], [0, 4])}}`, new Uint8Array(6)), /6 bytes of data but its tensors end at byte 4/);
  });

  it('duplicate names, which JSON.parse would silently collapse', () => {
    const dup = `{"x":${entry('F32', [1], [0, 4])},"y":${entry('F32', [1], [4, 8])},"x":${entry('F32', [1], [4, 8])}}`;
    assertFormatError(writeRaw(dup, twoF32), /the header lists 'x' twice/);
    const escaped = `{"\\u0078":${entry('F32', [2], [0, 8])},"x":${entry('F32', [2], [0, 8])}}`;
    assertFormatError(writeRaw(escaped, twoF32), /the header lists 'x' twice/);
    const metaTwice = `{"__metadata__":{},"x":${entry('F32', [2], [0, 8])},"__metadata__":{}}`;
    assertFormatError(writeRaw(metaTwice, twoF32), /lists '__metadata__' twice/);
    const fieldTwice = '{"x":{"dtype":"F32","shape":[2],"dtype":"U8","data_offsets":[0,8]}}';
    assertFormatError(writeRaw(fieldTwice, twoF32), /header entry 'x' has 'dtype' twice/);
    // the same key in different objects, or inside a string value, is fine
    const fine = `{"__metadata__":{"x":"{\\"x\\":1,\\"x\\":2}"},"x":${entry('F32', [2], [0, 8])}}`;
    assert.equal(SafetensorsFile.open(writeRaw(fine, twoF32)).metadata.x, '{"x":1,"x":2}');
  });

  it('__metadata__ that is not a string → string map', () => {
    const x = `"x":${entry('F32', [2], [0, 8])}`;
    assertFormatError(writeRaw(`{"__metadata__":{"epoch":3},${x}}`, twoF32), /'epoch' holds number 3/);
    assertFormatError(writeRaw(`{"__metadata__":["a"],${x}}`, twoF32), /must be an object of strings but is a list/);
    assertFormatError(writeRaw(`{"__metadata__":"pt",${x}}`, twoF32), /but is string "pt"/);
    assert.deepEqual(SafetensorsFile.open(writeRaw(`{"__metadata__":null,${x}}`, twoF32)).metadata, {});
  });
});

describe('readBytes reads only the tensor asked for', () => {
  it('reads a small tensor that sits past 5 GiB of other data with one short read at its absolute offset', (t) => {
    const bigBytes = 5 * 2 ** 30;   // a sparse region: no disk used, never read
    const header = `{"big":{"dtype":"U8","shape":[${bigBytes}],"data_offsets":[0,${bigBytes}]},` +
      `"small":{"dtype":"U8","shape":[4],"data_offsets":[${bigBytes},${bigBytes + 4}]}}`;
    const path = writeRaw(header);
    const dataStart = 8 + Buffer.byteLength(header);
    const fd = fs.openSync(path, 'r+');
    fs.writeSync(fd, new Uint8Array([9, 8, 7, 6]), 0, 4, dataStart + bigBytes);
    fs.closeSync(fd);
    const file = SafetensorsFile.open(path);
    assert.deepEqual(file.info('small'), { name: 'small', dtype: 'U8', shape: [4], byteOffset: dataStart + bigBytes, byteLength: 4 });

    // spy on the fs.readSync that the module sees: patch node's fs object, then sync its ESM exports
    const fsObject = createRequire(import.meta.url)('node:fs') as typeof fs;
    const originalReadSync = fsObject.readSync;
    const reads: { length: number; position: number | null }[] = [];
    fsObject.readSync = ((fd: number, buffer: NodeJS.ArrayBufferView, offset: number, length: number, position: number | null) => {
      reads.push({ length, position });
      return originalReadSync(fd, buffer, offset, length, position);
    }) as typeof fs.readSync;
    syncBuiltinESMExports();
    t.after(() => { fsObject.readSync = originalReadSync; syncBuiltinESMExports(); });
    assert.deepEqual([...file.readBytes('small')], [9, 8, 7, 6]);
    assert.deepEqual(reads, [{ length: 4, position: dataStart + bigBytes }]);
    file.close();
  });
});

describe('files written by Python safetensors (test/fixtures)', () => {
  const fixtures = findFixtures(nodePath.join(import.meta.dirname, '..', 'fixtures'));
  it('parses every tensor as the raw header says, and re-writing it reproduces the file byte for byte', (t) => {
    if (fixtures.length === 0) return t.skip('no .safetensors under test/fixtures yet');
    for (const path of fixtures) {
      const raw = fs.readFileSync(path);
      const n = Number(raw.readBigUInt64LE(0));
      const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
      const file = SafetensorsFile.open(path);
      for (const [name, info] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const parsed = file.info(name);
        assert.equal(parsed.dtype, info.dtype);
        assert.deepEqual(parsed.shape, info.shape);
        assert.equal(parsed.byteOffset, 8 + n + info.data_offsets[0]);
        assert.deepEqual(file.readBytes(name), new Uint8Array(raw.subarray(8 + n + info.data_offsets[0], 8 + n + info.data_offsets[1])));
      }
      const copy = freshPath();
      const tensors = [...file.tensors.values()].map((info) => ({ ...info, data: file.readBytes(info.name) }));
      writeSafetensors(copy, tensors, '__metadata__' in header ? file.metadata : undefined);
      assert.ok(fs.readFileSync(copy).equals(raw), `${path}: re-written file differs`);
      file.close();
    }
  });
});

function findFixtures(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.safetensors'))
    .map((name) => nodePath.join(dir, name))
    .sort();
}

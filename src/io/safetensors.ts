// Safetensors files: open one (read and validate only its header, keep the descriptor), read one tensor's bytes
// at its offset (never the whole file), and write a file as the Rust reference writer does.
// Layout and header checks: safetensors-header.ts.

import * as fs from 'node:fs';
import type { DType } from '../core/dtype.ts';
import { assert, fail } from '../core/errors.ts';
import {
  MAX_HEADER_BYTES, encodeHeader, isSafetensorsDType, parseHeader, tensorByteLength, type SafetensorsDType,
} from './safetensors-header.ts';

export { DTYPE_BITS, MAX_HEADER_BYTES, type SafetensorsDType } from './safetensors-header.ts';

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  byteOffset: number;   // absolute, from the start of the file
  byteLength: number;
}

/** Largest single read or write (Node limits one call to 2 GiB). */
const IO_CHUNK_BYTES = 1 << 30;

export class SafetensorsFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    readonly tensors: ReadonlyMap<string, TensorInfo>,   // in file order
    readonly metadata: Record<string, string>,
    readonly fileBytes: number,                          // size on disk
  ) {
    this.fd = fd;
  }

  /** Open `path` and validate its header; tensor data is read later, one tensor at a time. */
  static open(path: string): SafetensorsFile {
    const fd = openForReading(path);
    try {
      const stat = fs.fstatSync(fd);
      if (stat.isDirectory()) fail('usage', `${path}: is a directory, not a safetensors file; pass a .safetensors file`);
      const fileBytes = stat.size;
      const headerBytes = readHeaderBytes(fd, fileBytes, path);
      const dataStart = 8 + headerBytes.length;
      const { entries, metadata } = parseHeader(headerBytes, fileBytes - dataStart, path);
      const tensors = new Map<string, TensorInfo>();
      for (const { name, dtype, shape, begin, end } of entries) {
        tensors.set(name, { name, dtype, shape, byteOffset: dataStart + begin, byteLength: end - begin });
      }
      return new SafetensorsFile(path, fd, tensors, metadata, fileBytes);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  info(name: string): TensorInfo {
    return this.tensors.get(name) ??
      fail('not-found', `${this.path}: no tensor '${name}' in this file (it holds ${this.tensors.size}); check the tensor name`);
  }

  /** That tensor's bytes only, read at its offset into a fresh (aligned) buffer. */
  readBytes(name: string): Uint8Array {
    const info = this.info(name);
    assert(this.fd !== undefined, `readBytes('${name}') on closed ${this.path}`);
    const out = new Uint8Array(info.byteLength);
    let done = 0;
    while (done < out.length) {
      const length = Math.min(out.length - done, IO_CHUNK_BYTES);
      const read = fs.readSync(this.fd, out, done, length, info.byteOffset + done);
      if (read === 0) {
        fail('format', `${this.path}: the file ended while reading tensor '${name}' (bytes ${info.byteOffset}..` +
          `${info.byteOffset + info.byteLength}); it was truncated after it was opened, download it again`);
      }
      done += read;
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The moets dtype a safetensors dtype loads as, or undefined when moets has none. */
export function moetsDType(dtype: SafetensorsDType): DType | undefined {
  switch (dtype) {
    case 'F32': return 'f32';
    case 'BF16': return 'bf16';
    case 'F16': return 'f16';
    case 'I32': return 'i32';
    default: return undefined;
  }
}

function openForReading(path: string): number {
  try {
    return fs.openSync(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') fail('not-found', `${path}: no such safetensors file; check the path`);
    if (code === 'EACCES' || code === 'EPERM') fail('not-found', `${path}: permission denied; check the file's permissions`);
    throw error;
  }
}

/** Read the 8-byte length N and the N header bytes, checking them against the file's size. */
function readHeaderBytes(fd: number, fileBytes: number, path: string): Uint8Array {
  if (fileBytes < 8) {
    fail('format', `${path}: the file has ${fileBytes} bytes, fewer than the 8 of a safetensors length prefix; ` +
      'the file is incomplete or not a safetensors file, download it again');
  }
  const prefix = Buffer.alloc(8);
  readExactly(fd, prefix, 0, path);
  const headerLength = prefix.readBigUInt64LE(0);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    const hint = prefix.toString('latin1') === 'version '
      ? 'it looks like a Git LFS pointer, not the weights: run `git lfs pull` in the model directory'
      : 'this is not a safetensors file or it is corrupt';
    fail('format', `${path}: the header length ${headerLength} is over the ${MAX_HEADER_BYTES}-byte limit of safetensors; ${hint}`);
  }
  const n = Number(headerLength);
  if (8 + n > fileBytes) {
    fail('format', `${path}: truncated: the header says it is ${n} bytes long but the file has only ${fileBytes - 8} ` +
      'bytes after the length prefix; the file may be incomplete, download it again');
  }
  const header = new Uint8Array(n);
  readExactly(fd, header, 8, path);
  return header;
}

function readExactly(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.length) {
    const read = fs.readSync(fd, into, done, into.length - done, position + done);
    if (read === 0) fail('format', `${path}: the file ended while reading its header; it may be incomplete, download it again`);
    done += read;
  }
}

export interface TensorToWrite { name: string; dtype: SafetensorsDType; shape: number[]; data: Uint8Array }

/**
 * Write tensors (in the given order, back to back) and optional string metadata to `path`. The file is written
 * beside `path` and renamed into place, so a crash never leaves a half-written file under the final name.
 */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  checkTensorsToWrite(tensors, path);
  const header = encodeHeader(tensors.map((t) => ({ ...t, byteLength: t.data.byteLength })), metadata);
  if (header.length > MAX_HEADER_BYTES) {
    fail('input', `${path}: the header would be ${header.length} bytes, over the ${MAX_HEADER_BYTES}-byte limit; write fewer tensors per file`);
  }
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = fs.openSync(temporary, 'w');
  try {
    for (const bytes of [prefix, header, ...tensors.map((t) => t.data)]) writeAll(fd, bytes);
    fs.closeSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(temporary, { force: true });
    throw error;
  }
  fs.renameSync(temporary, path);
}

function checkTensorsToWrite(tensors: readonly TensorToWrite[], path: string): void {
  const names = new Set<string>();
  for (const { name, dtype, shape, data } of tensors) {
    const bad = (what: string): never => fail('input', `${path}: cannot write tensor '${name}': ${what}`);
    if (name === '__metadata__') bad('the name __metadata__ is reserved by safetensors');
    if (names.has(name)) bad('the name is given twice');
    names.add(name);
    if (!isSafetensorsDType(dtype)) bad(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`shape [${shape.join(', ')}] is not non-negative integers`);
    const bytes = tensorByteLength(dtype, shape);
    if (bytes !== data.byteLength) bad(`${dtype} [${shape.join(', ')}] needs ${bytes} bytes but ${data.byteLength} were given`);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, IO_CHUNK_BYTES));
  }
}

// The safetensors header: parse and validate it as the Rust reference does (huggingface/safetensors,
// safetensors/src/tensor.rs: `read_metadata` + `Metadata::validate`), and encode it as its writer does.
// File layout: [u64 LE: N] [N bytes: JSON header, space-padded] [data section: the tensors back to back]
// Header JSON: {"__metadata__": {str: str}?, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the data section; sorted by offset the tensors must tile it exactly from 0.

import { fail } from '../core/errors.ts';

/** The reference's limit on the header's length N. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every dtype the Rust reference accepts (F4 and F6 pack several elements per byte). */
export const DTYPE_BITS = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BITS;

export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(DTYPE_BITS, value);
}

/** One tensor of the header; begin/end are relative to the data section. */
export interface HeaderEntry { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }

export interface ParsedHeader {
  entries: HeaderEntry[];             // sorted by (begin, end): file order
  metadata: Record<string, string>;
}

const METADATA_KEY = '__metadata__';

/**
 * Bytes of a tensor of this dtype and shape: the element count folded left to right with overflow checks
 * (as the reference's checked_mul, but against 2^53 since offsets are JS numbers). 'overflow' if it cannot
 * be counted exactly; 'misaligned' if the elements do not fill whole bytes (e.g. three F4 values).
 */
export function tensorByteLength(dtype: SafetensorsDType, shape: readonly number[]): number | 'overflow' | 'misaligned' {
  let elements = 1;
  for (const dim of shape) {
    if (dim !== 0 && elements > Number.MAX_SAFE_INTEGER / dim) return 'overflow';
    elements *= dim;
  }
  const bits = DTYPE_BITS[dtype];
  if (((elements % 8) * bits) % 8 !== 0) return 'misaligned';
  const bytes = Math.floor(elements / 8) * bits + ((elements % 8) * bits) / 8;
  return Number.isSafeInteger(bytes) ? bytes : 'overflow';
}

/**
 * Parse the N header bytes of the file `label` (used in messages) whose data section holds `dataBytes` bytes.
 * Every problem is one MoetsError('format') naming the file.
 */
export function parseHeader(headerBytes: Uint8Array, dataBytes: number, label: string): ParsedHeader {
  const text = decodeUtf8(headerBytes, label);
  if (!text.startsWith('{')) {
    fail('format', `${label}: the header does not start with '{' (it starts with ${JSON.stringify(text.slice(0, 16))}); ` +
      'this is not a safetensors file or it is corrupt');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const reason = (error as Error).message.replace(/\s+/g, ' ').slice(0, 200);
    fail('format', `${label}: the header is not valid JSON (${reason}); the file is corrupt, download or export it again`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail('format', `${label}: the header is not a JSON object; this is not a safetensors file or it is corrupt`);
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    const where = duplicate.inside === undefined ? 'the header lists' : `the header entry '${duplicate.inside}' has`;
    fail('format', `${label}: ${where} '${duplicate.key}' twice; the file is corrupt (a writer bug), export it again`);
  }
  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value, label);
    else entries.push(parseEntry(name, value, label));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  validateLayout(entries, dataBytes, label);
  return { entries, metadata };
}

function decodeUtf8(bytes: Uint8Array, label: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return fail('format', `${label}: the header is not valid UTF-8; this is not a safetensors file or it is corrupt`);
  }
}

function parseMetadata(value: unknown, label: string): Record<string, string> {
  if (value === null) return {};   // serde reads `"__metadata__": null` as no metadata
  if (typeof value !== 'object' || Array.isArray(value)) {
    fail('format', `${label}: '__metadata__' must be an object of strings but is ${describe(value)}; the file is corrupt`);
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      fail('format', `${label}: '__metadata__' must map strings to strings but '${key}' holds ${describe(item)}; ` +
        'the file is corrupt or was written by a non-conforming tool');
    }
  }
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

function parseEntry(name: string, value: unknown, label: string): HeaderEntry {
  const bad = (what: string): never =>
    fail('format', `${label}: tensor '${name}' ${what}; the file is corrupt, download or export it again`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return bad(`has header entry ${describe(value)} instead of {"dtype", "shape", "data_offsets"}`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    return bad(`has ${dtype === undefined ? 'no dtype' : `unknown dtype ${JSON.stringify(dtype)}`} ` +
      `(safetensors dtypes: ${Object.keys(DTYPE_BITS).join(', ')})`);
  }
  if (!isIndexList(shape)) return bad(`has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  if (!isIndexList(offsets) || offsets.length !== 2) {
    return bad(`has data_offsets ${JSON.stringify(offsets)}, not [begin, end] in non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) return bad(`has data_offsets [${begin}, ${end}] whose begin is after its end`);
  return { name, dtype, shape, begin, end };
}

/** Sorted entries must tile [0, dataBytes) exactly, each spanning the bytes its dtype and shape need. */
function validateLayout(entries: readonly HeaderEntry[], dataBytes: number, label: string): void {
  let expectedBegin = 0;
  let previous: HeaderEntry | undefined;
  for (const entry of entries) {
    const { name, begin, end, dtype, shape } = entry;
    if (begin > expectedBegin) {
      fail('format', `${label}: data bytes ${expectedBegin}..${begin} belong to no tensor (a gap before '${name}'); ` +
        'the file is corrupt, download or export it again');
    }
    if (begin < expectedBegin) {
      fail('format', `${label}: tensor '${name}' (bytes ${begin}..${end}) overlaps '${previous?.name}' ` +
        `(bytes ${previous?.begin}..${previous?.end}); the file is corrupt, download or export it again`);
    }
    const bytes = tensorByteLength(dtype, shape);
    const kind = `${dtype} [${shape.join(', ')}]`;
    if (bytes === 'overflow') {
      fail('format', `${label}: tensor '${name}' is ${kind}, too many elements to count exactly; the file is corrupt`);
    }
    if (bytes === 'misaligned') {
      fail('format', `${label}: tensor '${name}' is ${kind}, which does not fill a whole number of bytes; the file is corrupt`);
    }
    if (end - begin !== bytes) {
      fail('format', `${label}: tensor '${name}' is ${kind} = ${bytes} bytes but its data_offsets [${begin}, ${end}] ` +
        `span ${end - begin} bytes; the file is corrupt, download or export it again`);
    }
    expectedBegin = end;
    previous = entry;
  }
  if (expectedBegin > dataBytes) {
    fail('format', `${label}: truncated: the header says tensor '${previous?.name}' ends at data byte ${expectedBegin} ` +
      `but the file has ${dataBytes} bytes of data; the file may be incomplete, download it again`);
  }
  if (expectedBegin < dataBytes) {
    fail('format', `${label}: the file has ${dataBytes} bytes of data but its tensors end at byte ${expectedBegin}; ` +
      'the file has trailing bytes or is corrupt, download or export it again');
  }
}

function isIndexList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * The first key that appears twice within one object of `text` (valid JSON), with the top-level key it sits
 * under (undefined for a top-level duplicate). JSON.parse silently keeps the last of duplicates; this finds them.
 */
export function findDuplicateKey(text: string): { key: string; inside: string | undefined } | undefined {
  const open: (Set<string> | null)[] = [];   // per open container: the keys seen (objects) or null (arrays)
  let expectKey = false;
  let topKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (expectKey) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
        const seen = open[open.length - 1]!;
        if (seen.has(key)) return { key, inside: open.length === 1 ? undefined : topKey };
        seen.add(key);
        if (open.length === 1) topKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      open.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      open.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = open[open.length - 1] !== null;
    }
  }
  return undefined;
}

export interface TensorToEncode { name: string; dtype: SafetensorsDType; shape: readonly number[]; byteLength: number }

/**
 * The header bytes (padded with spaces to a multiple of 8, as the Rust writer does) for tensors laid out back
 * to back in the given order. Keys keep their order: "__metadata__" first, then the tensors.
 */
export function encodeHeader(tensors: readonly TensorToEncode[], metadata: Record<string, string> | undefined): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const items = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${items.join(',')}}`);
  }
  let offset = 0;
  for (const t of tensors) {
    const info = `{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + t.byteLength}]}`;
    parts.push(`${JSON.stringify(t.name)}:${info}`);
    offset += t.byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

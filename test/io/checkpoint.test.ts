// Checkpoint discovery: one model.safetensors, a sharded index, a directory of *.safetensors; and the errors
// for missing, inconsistent or corrupt pieces (each one line naming the file at fault).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { MoetsError, type ErrorKind } from '../../src/core/errors.ts';
import { Checkpoint } from '../../src/io/checkpoint.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';

const tmp = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'moets-checkpoint-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirCounter = 0;
const freshDir = (): string => fs.mkdtempSync(nodePath.join(tmp, `d${dirCounter++}-`));

/** A U8 tensor whose bytes say which tensor it is: [seed, seed + 1, ...]. */
function u8Tensor(name: string, length: number, seed: number) {
  const data = Uint8Array.from({ length }, (_, i) => (seed + i) & 0xff);
  return { name, dtype: 'U8' as const, shape: [length], data };
}

/** Write shards {file: tensors} into dir; returns the expected bytes of every tensor by name. */
function writeShards(dir: string, shards: Record<string, ReturnType<typeof u8Tensor>[]>): Map<string, Uint8Array> {
  const expected = new Map<string, Uint8Array>();
  for (const [file, tensors] of Object.entries(shards)) {
    writeSafetensors(nodePath.join(dir, file), tensors);
    for (const t of tensors) expected.set(t.name, t.data);
  }
  return expected;
}

function writeIndex(dir: string, weightMap: Record<string, unknown>): string {
  const path = nodePath.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(path, JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return path;
}

function assertError(open: () => unknown, kind: ErrorKind, ...parts: (string | RegExp)[]): void {
  assert.throws(open, (error: unknown) => {
    assert.ok(error instanceof MoetsError, `expected a MoetsError, got ${String(error)}`);
    assert.equal(error.kind, kind, error.message);
    for (const part of parts) {
      if (typeof part === 'string') assert.ok(error.message.includes(part), `'${part}' not in: ${error.message}`);
      else assert.match(error.message, part);
    }
    assert.ok(!error.message.includes('\n'));
    return true;
  });
}

function openFds(): number | undefined {
  return fs.existsSync('/proc/self/fd') ? fs.readdirSync('/proc/self/fd').length : undefined;
}

function assertReadsAll(checkpoint: Checkpoint, expected: Map<string, Uint8Array>): void {
  assert.deepEqual(new Set(checkpoint.names()), new Set(expected.keys()));
  for (const [name, data] of expected) {
    assert.ok(checkpoint.has(name));
    assert.deepEqual(checkpoint.readBytes(name), data);
    assert.deepEqual(checkpoint.info(name).shape, [data.length]);
  }
}

describe('Checkpoint.open finds the safetensors files', () => {
  it('model.safetensors, preferred over any other *.safetensors beside it', () => {
    const dir = freshDir();
    const expected = writeShards(dir, { 'model.safetensors': [u8Tensor('a', 3, 10), u8Tensor('b', 5, 20)] });
    writeShards(dir, { 'stray.safetensors': [u8Tensor('a', 7, 99)] });
    const checkpoint = Checkpoint.open(dir);
    assert.equal(checkpoint.dir, dir);
    assert.deepEqual(checkpoint.files, [nodePath.join(dir, 'model.safetensors')]);
    assert.deepEqual(checkpoint.names(), ['a', 'b']);
    assertReadsAll(checkpoint, expected);
    assert.equal(checkpoint.totalBytes(), fs.statSync(nodePath.join(dir, 'model.safetensors')).size);
    checkpoint.close();
  });

  it('a sharded index: tensors from every shard it names, under one view', () => {
    const dir = freshDir();
    const shardNames = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    const expected = writeShards(dir, {
      [shardNames[0]!]: [u8Tensor('embed', 6, 1), u8Tensor('layers.0.w', 4, 40)],
      [shardNames[1]!]: [u8Tensor('layers.1.w', 4, 80)],
      [shardNames[2]!]: [u8Tensor('norm', 2, 120), u8Tensor('lm_head', 9, 140)],
    });
    writeShards(dir, { 'not-in-index.safetensors': [u8Tensor('junk', 1, 0)] });
    writeIndex(dir, {
      embed: shardNames[0], 'layers.0.w': shardNames[0], 'layers.1.w': shardNames[1], norm: shardNames[2], lm_head: shardNames[2],
    });
    const checkpoint = Checkpoint.open(dir);
    assert.deepEqual(checkpoint.files, shardNames.map((name) => nodePath.join(dir, name)));
    assertReadsAll(checkpoint, expected);
    const sizes = shardNames.map((name) => fs.statSync(nodePath.join(dir, name)).size);
    assert.equal(checkpoint.totalBytes(), sizes[0]! + sizes[1]! + sizes[2]!);
    assert.equal(checkpoint.info('lm_head').byteLength, 9);
    checkpoint.close();
  });

  it('a shard may hold tensors the index does not list (they are loaded, as transformers does)', () => {
    const dir = freshDir();
    const expected = writeShards(dir, { 's1.safetensors': [u8Tensor('listed', 2, 1), u8Tensor('unlisted', 3, 7)] });
    writeIndex(dir, { listed: 's1.safetensors' });
    assertReadsAll(Checkpoint.open(dir), expected);
  });

  it('without model.safetensors or an index: every *.safetensors in the directory, in name order', () => {
    const dir = freshDir();
    const expected = writeShards(dir, {
      'consolidated-b.safetensors': [u8Tensor('y', 4, 3)],
      'consolidated-a.safetensors': [u8Tensor('x', 2, 5), u8Tensor('z', 1, 9)],
    });
    fs.writeFileSync(nodePath.join(dir, 'config.json'), '{}');
    fs.mkdirSync(nodePath.join(dir, 'folder.safetensors'));
    const checkpoint = Checkpoint.open(dir);
    assert.deepEqual(checkpoint.files, ['consolidated-a.safetensors', 'consolidated-b.safetensors'].map((f) => nodePath.join(dir, f)));
    assert.deepEqual(checkpoint.names(), ['x', 'z', 'y']);
    assertReadsAll(checkpoint, expected);
  });

  it('a path to one .safetensors file', () => {
    const dir = freshDir();
    const expected = writeShards(dir, { 'weights.safetensors': [u8Tensor('w', 3, 3)] });
    const checkpoint = Checkpoint.open(nodePath.join(dir, 'weights.safetensors'));
    assert.equal(checkpoint.dir, dir);
    assertReadsAll(checkpoint, expected);
  });
});

describe('Checkpoint.open errors', () => {
  it('a missing directory, or one without safetensors, is not-found and says what was expected', () => {
    const missing = nodePath.join(tmp, 'no-such-model');
    assertError(() => Checkpoint.open(missing), 'not-found', missing);
    const empty = freshDir();
    fs.writeFileSync(nodePath.join(empty, 'config.json'), '{}');
    assertError(() => Checkpoint.open(empty), 'not-found', empty, 'model.safetensors', 'model.safetensors.index.json');
  });

  it('a tensor name in two files', () => {
    const dir = freshDir();
    writeShards(dir, { 'a.safetensors': [u8Tensor('w', 2, 1)], 'b.safetensors': [u8Tensor('w', 2, 1)] });
    assertError(() => Checkpoint.open(dir), 'format', nodePath.join(dir, 'a.safetensors'), nodePath.join(dir, 'b.safetensors'), "'w'");
  });

  it('index problems: bad JSON, no weight_map, a non-string shard, a shard outside the directory', () => {
    const dir = freshDir();
    writeShards(dir, { 's.safetensors': [u8Tensor('w', 2, 1)] });
    const indexPath = nodePath.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(indexPath, '{"weight_map": {"w": "s.safetensors"');
    assertError(() => Checkpoint.open(dir), 'format', `${indexPath}: not valid JSON`);
    fs.writeFileSync(indexPath, '{"metadata": {}}');
    assertError(() => Checkpoint.open(dir), 'format', indexPath, 'no "weight_map"');
    fs.writeFileSync(indexPath, 'null');
    assertError(() => Checkpoint.open(dir), 'format', indexPath, 'no "weight_map"');
    writeIndex(dir, { w: 3 });
    assertError(() => Checkpoint.open(dir), 'format', indexPath, "'w' to 3");
    writeIndex(dir, { w: '../s.safetensors' });
    assertError(() => Checkpoint.open(dir), 'format', indexPath, 'outside the model directory');
    writeIndex(dir, {});
    assertError(() => Checkpoint.open(dir), 'format', indexPath, 'weight_map is empty');
  });

  it('index naming a shard that is missing', () => {
    const dir = freshDir();
    writeShards(dir, { 'model-00001-of-00002.safetensors': [u8Tensor('a', 2, 1)] });
    const indexPath = writeIndex(dir, { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' });
    assertError(() => Checkpoint.open(dir), 'not-found', indexPath, "'model-00002-of-00002.safetensors'", 'download');
  });

  it('index listing a tensor its shard does not hold, or holding it in another shard', () => {
    const dir = freshDir();
    writeShards(dir, { 's1.safetensors': [u8Tensor('a', 2, 1), u8Tensor('c', 2, 1)], 's2.safetensors': [u8Tensor('b', 2, 1)] });
    const indexPath = writeIndex(dir, { a: 's1.safetensors', b: 's2.safetensors', ghost: 's2.safetensors' });
    assertError(() => Checkpoint.open(dir), 'format', indexPath, "'ghost' in s2.safetensors but that file does not hold it");
    writeIndex(dir, { a: 's2.safetensors', b: 's2.safetensors', c: 's1.safetensors' });
    assertError(() => Checkpoint.open(dir), 'format', indexPath, "'a' in s2.safetensors but it is in s1.safetensors");
  });

  it('a corrupt shard fails with the shard named, and no file stays open', () => {
    const dir = freshDir();
    writeShards(dir, { 'a.safetensors': [u8Tensor('a', 2, 1)], 'c.safetensors': [u8Tensor('c', 2, 1)] });
    const corrupt = nodePath.join(dir, 'b.safetensors');
    writeSafetensors(corrupt, [u8Tensor('b', 64, 1)]);
    fs.truncateSync(corrupt, fs.statSync(corrupt).size - 10);
    const before = openFds();
    assertError(() => Checkpoint.open(dir), 'format', `${corrupt}: truncated`);
    assert.equal(openFds(), before);
  });

  it('an unknown tensor name is not-found naming the checkpoint', () => {
    const dir = freshDir();
    writeShards(dir, { 'model.safetensors': [u8Tensor('a', 2, 1)] });
    const checkpoint = Checkpoint.open(dir);
    assert.equal(checkpoint.has('nope'), false);
    assertError(() => checkpoint.info('nope'), 'not-found', dir, "'nope'");
    assertError(() => checkpoint.readBytes('nope'), 'not-found', dir, "'nope'");
    checkpoint.close();
  });
});

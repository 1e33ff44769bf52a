// A model directory's safetensors files behind one name → tensor view. Which files, as Hugging Face lays them out:
//   model.safetensors                                    one file
//   model.safetensors.index.json + the shards it names   {"weight_map": {"<tensor>": "<shard file>", ...}}
//   otherwise every *.safetensors in the directory       (consolidated or hand-made checkpoints)
// Only headers are read when opening; tensor bytes are read one tensor at a time.

import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { fail } from '../core/errors.ts';
import { SafetensorsFile, type TensorInfo } from './safetensors.ts';

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly files: string[],                              // paths of the safetensors files, in load order
    private readonly shards: SafetensorsFile[],
    private readonly fileOf: Map<string, SafetensorsFile>,  // tensor name → the file holding it
  ) {}

  /** Open the checkpoint in `dir` (a model directory, or one .safetensors file). */
  static open(dir: string): Checkpoint {
    const stat = statOrFail(dir);
    const { root, files, index } = stat.isDirectory()
      ? findFiles(dir)
      : { root: nodePath.dirname(dir), files: [dir], index: undefined };
    const shards: SafetensorsFile[] = [];
    try {
      for (const file of files) shards.push(SafetensorsFile.open(file));
      const fileOf = mapTensorsToFiles(shards);
      if (index !== undefined) checkIndex(index, fileOf);
      return new Checkpoint(root, files, shards, fileOf);
    } catch (error) {
      for (const shard of shards) shard.close();
      throw error;
    }
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  info(name: string): TensorInfo {
    return this.fileFor(name).info(name);
  }

  /** Every tensor name, file by file in file order. */
  names(): string[] {
    return [...this.fileOf.keys()];
  }

  readBytes(name: string): Uint8Array {
    return this.fileFor(name).readBytes(name);
  }

  /** Bytes on disk of the safetensors files. */
  totalBytes(): number {
    return this.shards.reduce((sum, shard) => sum + shard.fileBytes, 0);
  }

  close(): void {
    for (const shard of this.shards) shard.close();
  }

  private fileFor(name: string): SafetensorsFile {
    return this.fileOf.get(name) ?? fail('not-found', `${this.dir}: the checkpoint has no tensor '${name}' ` +
      `(it has ${this.fileOf.size} tensors in ${this.files.length} files); the checkpoint does not match this model`);
  }
}

interface IndexFile { path: string; weightMap: Map<string, string> }   // tensor name → shard path

function statOrFail(path: string): fs.Stats {
  try {
    return fs.statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') fail('not-found', `${path}: no such model directory; check the path`);
    throw error;
  }
}

function findFiles(dir: string): { root: string; files: string[]; index: IndexFile | undefined } {
  const single = nodePath.join(dir, SINGLE_FILE);
  if (fs.existsSync(single)) return { root: dir, files: [single], index: undefined };
  const indexPath = nodePath.join(dir, INDEX_FILE);
  if (fs.existsSync(indexPath)) {
    const index = readIndex(indexPath, dir);
    return { root: dir, files: [...new Set(index.weightMap.values())].sort(), index };
  }
  const files = fs.readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.name.endsWith('.safetensors') && !entry.isDirectory())
    .map((entry) => nodePath.join(dir, entry.name))
    .sort();
  if (files.length === 0) {
    fail('not-found', `${dir}: no ${SINGLE_FILE}, ${INDEX_FILE} or other *.safetensors file here; ` +
      'point to a Hugging Face model directory that holds the safetensors weights');
  }
  return { root: dir, files, index: undefined };
}

/** Parse model.safetensors.index.json; every shard it names must exist beside it. */
function readIndex(indexPath: string, dir: string): IndexFile {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (error) {
    const reason = (error as Error).message.replace(/\s+/g, ' ').slice(0, 200);
    fail('format', `${indexPath}: not valid JSON (${reason}); the file is corrupt, download it again`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    fail('format', `${indexPath}: has no "weight_map" object (tensor name → shard file); the file is corrupt, download it again`);
  }
  const shardPaths = new Map<string, string>();   // shard name as written → path
  const result = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string') {
      fail('format', `${indexPath}: weight_map maps '${tensor}' to ${JSON.stringify(shard)}, not a file name; the file is corrupt`);
    }
    let path = shardPaths.get(shard);
    if (path === undefined) {
      path = shardPath(shard, indexPath, dir);
      shardPaths.set(shard, path);
    }
    result.set(tensor, path);
  }
  if (result.size === 0) fail('format', `${indexPath}: weight_map is empty; the file is corrupt, download it again`);
  return { path: indexPath, weightMap: result };
}

function shardPath(shard: string, indexPath: string, dir: string): string {
  const normal = nodePath.normalize(shard);
  if (nodePath.isAbsolute(normal) || normal === '..' || normal.startsWith(`..${nodePath.sep}`)) {
    fail('format', `${indexPath}: shard '${shard}' is outside the model directory; the index is corrupt or unsafe`);
  }
  const path = nodePath.join(dir, normal);
  if (!fs.existsSync(path)) {
    fail('not-found', `${indexPath}: lists shard '${shard}' but ${path} does not exist; the download is incomplete, download it again`);
  }
  return path;
}

/** Every tensor name → its file; a name held by two files is an error (which one would be meant?). */
function mapTensorsToFiles(shards: readonly SafetensorsFile[]): Map<string, SafetensorsFile> {
  const fileOf = new Map<string, SafetensorsFile>();
  for (const shard of shards) {
    for (const name of shard.tensors.keys()) {
      const other = fileOf.get(name);
      if (other !== undefined) {
        fail('format', `${shard.path}: tensor '${name}' is also in ${other.path}; a checkpoint holds each tensor once, ` +
          'remove the stray file or download the checkpoint again');
      }
      fileOf.set(name, shard);
    }
  }
  return fileOf;
}

/** Each tensor the index lists must be in the shard it names. */
function checkIndex(index: IndexFile, fileOf: ReadonlyMap<string, SafetensorsFile>): void {
  for (const [name, path] of index.weightMap) {
    const holder = fileOf.get(name);
    if (holder === undefined) {
      fail('format', `${index.path}: lists tensor '${name}' in ${nodePath.basename(path)} but that file does not hold it; ` +
        'the shards do not match the index, download the checkpoint again');
    }
    if (holder.path !== path) {
      fail('format', `${index.path}: lists tensor '${name}' in ${nodePath.basename(path)} but it is in ` +
        `${nodePath.basename(holder.path)}; the shards do not match the index, download the checkpoint again`);
    }
  }
}

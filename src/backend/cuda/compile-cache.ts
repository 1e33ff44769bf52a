// Compiled kernels cached on disk: a CUDA C source compiled by NVRTC for one architecture is kept as
// <cache>/kernels/<sha256 of source, options, arch and NVRTC version>.cubin, so each kernel file compiles once per
// machine and toolkit. <cache> is $MOETS_CACHE_DIR, else $XDG_CACHE_HOME/moets, else ~/.cache/moets.
//
// The compiler is passed in (Nvrtc.compile in the backend), so this logic is tested without a GPU. A cached file
// that is not an ELF image (cut short, overwritten) is compiled again; a cache folder that cannot be written
// only costs the compile next time.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What to compile. `arch` is the real architecture, e.g. sm_90, or sm_90a for kernels that use wgmma. */
export interface CompileRequest {
  source: string;
  /** For messages: the .cu file name. */
  name: string;
  arch: string;
  /** NVRTC options besides the architecture. */
  options: readonly string[];
}

/** Compiles source with the full option list (architecture included) to a cubin. */
export type CubinCompiler = (source: string, name: string, options: readonly string[]) => Uint8Array;

export interface CompiledKernel {
  cubin: Uint8Array;
  /** True when it came from the disk cache. */
  cached: boolean;
  /** Where it is (or would have been) stored. */
  file: string;
}

export function defaultCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env['MOETS_CACHE_DIR']) return env['MOETS_CACHE_DIR'];
  if (env['XDG_CACHE_HOME']) return join(env['XDG_CACHE_HOME'], 'moets');
  return join(homedir(), '.cache', 'moets');
}

/** The full NVRTC option list for a request. */
export function compileOptions(req: CompileRequest): string[] {
  return [`--gpu-architecture=${req.arch}`, ...req.options];
}

/** The cache key: everything that changes the cubin. */
export function cacheKey(req: CompileRequest, compilerVersion: string): string {
  const hash = createHash('sha256');
  for (const part of [req.source, compileOptions(req).join('\n'), req.arch, compilerVersion]) {
    hash.update(part).update('\0');
  }
  return hash.digest('hex');
}

export class CompileCache {
  /** Compiles and cache hits since this cache was made. */
  readonly stats = { compiled: 0, hits: 0 };
  readonly dir: string;

  constructor(
    private readonly compiler: CubinCompiler,
    private readonly compilerVersion: string,
    cacheDir: string = defaultCacheDir(),
  ) {
    this.dir = join(cacheDir, 'kernels');
  }

  compile(req: CompileRequest): CompiledKernel {
    const file = join(this.dir, `${cacheKey(req, this.compilerVersion)}.cubin`);
    const cached = readCubin(file);
    if (cached) {
      this.stats.hits++;
      return { cubin: cached, cached: true, file };
    }
    const cubin = this.compiler(req.source, req.name, compileOptions(req));
    this.stats.compiled++;
    store(file, cubin);
    return { cubin, cached: false, file };
  }
}

function readCubin(file: string): Uint8Array | undefined {
  try {
    const bytes = readFileSync(file);
    return isElf(bytes) ? new Uint8Array(bytes) : undefined;
  } catch {
    return undefined;
  }
}

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length > 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** Written to a temporary name and renamed, so another process never reads half a file. */
function store(file: string, cubin: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(tmp, cubin);
    renameSync(tmp, file);
  } catch {
    // An unwritable cache costs a compile next time, nothing else.
  }
}

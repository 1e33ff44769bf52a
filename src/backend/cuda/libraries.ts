// Finding the CUDA libraries moets loads through koffi: libcuda.so.1 (the driver), libnvrtc (the run-time
// compiler), libcublasLt and libcublas. Each is looked for, in order:
//   1. its own variable (MOETS_LIBCUDA, MOETS_LIBNVRTC, MOETS_LIBCUBLASLT, MOETS_LIBCUBLAS): a file, or a folder;
//      when set, nothing else is tried for that library;
//   2. MOETS_CUDA_LIB_DIR, one folder for all of them;
//   3. the dynamic loader's own search (dlopen of the bare soname: LD_LIBRARY_PATH, ld.so.cache, /usr/lib...);
//   4. CUDA_HOME, CUDA_PATH and /usr/local/cuda (lib64, targets/x86_64-linux/lib, lib);
//   5. the driver's usual folders (libcuda only);
//   6. the folders pip's nvidia-* wheels install into (nvidia/cu13/lib, nvidia/cuda_nvrtc/lib, nvidia/cublas/lib)
//      under every Python site-packages found cheaply: PYTHONPATH, VIRTUAL_ENV, CONDA_PREFIX, the lib/ beside each
//      python3 on PATH, ~/.local, /usr/local/lib and /usr/lib (no Python is run).
// Nothing found: one line naming the library, where moets looked, and the variable that points moets at it.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MoetsError } from '../../core/errors.ts';
import { firstLine } from './ffi.ts';

export type LibraryKey = 'cuda' | 'nvrtc' | 'cublasLt' | 'cublas';

export interface LibrarySpec {
  key: LibraryKey;
  /** What it is, for messages: "libnvrtc (NVRTC, CUDA's run-time compiler)". */
  label: string;
  /** The variable that names the file (or its folder). */
  env: string;
  /** File names to try, preferred first. */
  sonames: readonly string[];
  /** Whether a CUDA toolkit's lib folders may hold it (not the driver's libcuda). */
  inToolkit: boolean;
  /** Folders, relative to a site-packages, where pip's nvidia-* wheels put it. */
  wheelDirs: readonly string[];
  /** Other absolute folders to try. */
  systemDirs: readonly string[];
  /** Files (by name prefix) in the same folder to load first, so the library's own dlopen finds them there. */
  companions: readonly string[];
  /** What to do when it is missing (besides pointing the variables at it). */
  remedy: string;
}

const WHEEL_CU13 = 'nvidia/cu13/lib';

export const CUDA_LIBRARIES: Readonly<Record<LibraryKey, LibrarySpec>> = {
  cuda: {
    key: 'cuda', label: 'libcuda.so.1 (the NVIDIA driver library)', env: 'MOETS_LIBCUDA',
    sonames: ['libcuda.so.1', 'libcuda.so'], inToolkit: false, wheelDirs: [],
    systemDirs: ['/usr/local/nvidia/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/wsl/lib'],
    companions: [], remedy: '--device cuda needs an NVIDIA GPU and its driver (nvidia-smi lists them); use --device cpu',
  },
  nvrtc: {
    key: 'nvrtc', label: "libnvrtc (NVRTC, CUDA's run-time compiler)", env: 'MOETS_LIBNVRTC',
    sonames: ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so'], inToolkit: true,
    wheelDirs: [WHEEL_CU13, 'nvidia/cuda_nvrtc/lib', 'nvidia/cu12/lib'], systemDirs: [],
    companions: ['libnvrtc-builtins.so'], remedy: 'install the CUDA toolkit 12 or 13 (or pip install nvidia-cuda-nvrtc)',
  },
  cublasLt: {
    key: 'cublasLt', label: 'libcublasLt (cuBLASLt)', env: 'MOETS_LIBCUBLASLT',
    sonames: ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'], inToolkit: true,
    wheelDirs: [WHEEL_CU13, 'nvidia/cublas/lib', 'nvidia/cu12/lib'], systemDirs: [],
    companions: [], remedy: 'install the CUDA toolkit 12 or 13 (or pip install nvidia-cublas)',
  },
  cublas: {
    key: 'cublas', label: 'libcublas (cuBLAS)', env: 'MOETS_LIBCUBLAS',
    sonames: ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so'], inToolkit: true,
    wheelDirs: [WHEEL_CU13, 'nvidia/cublas/lib', 'nvidia/cu12/lib'], systemDirs: [],
    companions: [], remedy: 'install the CUDA toolkit 12 or 13 (or pip install nvidia-cublas)',
  },
};

/** Where the search looks: the environment, and a prefix for absolute system paths (tests use a fake tree). */
export interface SearchContext {
  env: Readonly<Record<string, string | undefined>>;
  root: string;
}

export function defaultSearchContext(): SearchContext {
  return { env: process.env, root: '/' };
}

/** One place to try: a path (or a bare soname for the loader) and where the idea came from. */
export interface Candidate {
  path: string;
  from: string;
}

export const LOADER = "the loader's path";

/** The spec with only the sonames of one major version (libcublas to match the libcublasLt already loaded). */
export function withMajor(spec: LibrarySpec, major: string | undefined): LibrarySpec {
  if (major === undefined) return spec;
  const sonames = spec.sonames.filter((s) => s.endsWith(`.so.${major}`));
  return sonames.length > 0 ? { ...spec, sonames } : spec;
}

/** "13" for .../libcublasLt.so.13 (or .so.13.1.0), undefined for an unversioned name. */
export function majorOf(path: string): string | undefined {
  return /\.so\.(\d+)/.exec(basename(path))?.[1];
}

/** Every place to try for `spec`, in order (see the top of this file), and the folders looked in. */
export function libraryCandidates(spec: LibrarySpec, ctx: SearchContext): { candidates: Candidate[]; folders: string[] } {
  const own = ctx.env[spec.env];
  if (own) {
    const inFolder = isDir(own) ? spec.sonames.map((s) => join(own, s)).filter(existsSync) : [own];
    return { candidates: inFolder.map((path) => ({ path, from: spec.env })), folders: [own] };
  }
  const folders: { dir: string; from: string }[] = [];
  const libDir = ctx.env['MOETS_CUDA_LIB_DIR'];
  if (libDir) folders.push({ dir: libDir, from: 'MOETS_CUDA_LIB_DIR' });
  const candidates: Candidate[] = [];
  for (const f of folders) candidates.push(...filesIn(f.dir, spec, f.from));
  candidates.push(...spec.sonames.map((path) => ({ path, from: LOADER })));
  const later = searchFolders(spec, ctx);
  for (const f of later) candidates.push(...filesIn(f.dir, spec, f.from));
  return { candidates: dedupe(candidates), folders: [...folders, ...later].map((f) => f.dir) };
}

function searchFolders(spec: LibrarySpec, ctx: SearchContext): { dir: string; from: string }[] {
  const out: { dir: string; from: string }[] = [];
  if (spec.inToolkit) {
    for (const [root, from] of [
      [ctx.env['CUDA_HOME'], 'CUDA_HOME'], [ctx.env['CUDA_PATH'], 'CUDA_PATH'], [join(ctx.root, 'usr/local/cuda'), '/usr/local/cuda'],
    ] as const) {
      if (!root) continue;
      for (const sub of ['lib64', 'targets/x86_64-linux/lib', 'lib']) out.push({ dir: join(root, sub), from });
    }
  }
  for (const dir of spec.systemDirs) out.push({ dir: join(ctx.root, dir), from: dir });
  for (const site of sitePackages(ctx)) {
    for (const sub of spec.wheelDirs) out.push({ dir: join(site, sub), from: 'a pip nvidia-* wheel' });
  }
  return out;
}

/** Python site-packages folders found without running Python. */
export function sitePackages(ctx: SearchContext): string[] {
  const env = ctx.env;
  const prefixes: string[] = [];
  for (const v of [env['VIRTUAL_ENV'], env['CONDA_PREFIX']]) if (v) prefixes.push(v);
  for (const bin of (env['PATH'] ?? '').split(':')) {
    if (bin && basename(bin) === 'bin' && existsSync(join(bin, 'python3'))) prefixes.push(dirname(bin));
  }
  if (env['HOME']) prefixes.push(join(env['HOME'], '.local'));
  prefixes.push(join(ctx.root, 'usr/local'), join(ctx.root, 'usr'));
  const sites = (env['PYTHONPATH'] ?? '').split(':').filter((p) => p !== '');
  for (const prefix of prefixes) {
    for (const py of pythonDirs(join(prefix, 'lib'))) {
      for (const kind of ['site-packages', 'dist-packages']) sites.push(join(prefix, 'lib', py, kind));
    }
  }
  return [...new Set(sites)].filter(isDir);
}

/** python3, python3.12, ... under a lib folder. */
function pythonDirs(lib: string): string[] {
  try {
    return readdirSync(lib).filter((name) => /^python3(\.\d+)?$/.test(name)).sort();
  } catch {
    return [];
  }
}

function filesIn(dir: string, spec: LibrarySpec, from: string): Candidate[] {
  return spec.sonames.map((s) => join(dir, s)).filter(existsSync).map((path) => ({ path, from }));
}

function dedupe(candidates: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return candidates.filter((c) => !seen.has(c.path) && (seen.add(c.path), true));
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A CUDA library that could not be found or loaded (a one-line device error). */
export class LibraryNotFoundError extends MoetsError {
  /** viaEnv: the library's own variable named a file that did not load. */
  constructor(readonly library: LibraryKey, message: string, readonly viaEnv = false) {
    super('device', message);
  }
}

export interface FoundLibrary<T> {
  lib: T;
  path: string;
  from: string;
}

/** Opens the first candidate that loads (open = koffi.load in the backend; tests pass a fake). */
export function findLibrary<T>(spec: LibrarySpec, open: (path: string) => T, ctx: SearchContext = defaultSearchContext()): FoundLibrary<T> {
  const { candidates, folders } = libraryCandidates(spec, ctx);
  let broken: string | undefined;
  for (const c of candidates) {
    try {
      if (c.from !== LOADER) loadCompanions(c.path, spec, open);
      return { lib: open(c.path), path: c.path, from: c.from };
    } catch (err) {
      const why = firstLine(err);
      const missing = c.from === LOADER && /no such file|cannot open shared object/i.test(why);
      if (!missing) broken ??= `${c.path} could not be loaded (${why})`;
    }
  }
  const own = ctx.env[spec.env];
  if (own && !existsSync(own)) {
    throw new LibraryNotFoundError(spec.key, `${spec.env}=${own} does not exist; point ${spec.env} at ${spec.sonames[0]} (or its folder), or unset it`, true);
  }
  if (own) {
    throw new LibraryNotFoundError(spec.key, `${spec.env}=${own} does not hold a loadable ${spec.label}${broken ? `: ${broken}` : ''}; ` +
      `point ${spec.env} at ${spec.sonames[0]} (or its folder), or unset it`, true);
  }
  const where = [...new Set([LOADER, ...folders])].join(', ');
  const problem = broken ? `${spec.label} was found, but ${broken}` : `${spec.label} was not found (looked for ${spec.sonames.join(', ')} in ${where})`;
  throw new LibraryNotFoundError(spec.key, `${problem}; ${spec.remedy}, or set ${spec.env} to the library file (or MOETS_CUDA_LIB_DIR to its folder)`);
}

/** Loads the files a library opens by name itself (libnvrtc's builtins) from its folder, so they match it. */
function loadCompanions<T>(path: string, spec: LibrarySpec, open: (path: string) => T): void {
  if (spec.companions.length === 0) return;
  const dir = dirname(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const prefix of spec.companions) {
    const name = names.filter((n) => n.startsWith(prefix)).sort()[0];
    if (name) open(join(dir, name));
  }
}

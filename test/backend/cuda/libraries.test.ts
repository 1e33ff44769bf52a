// Finding the CUDA libraries (src/backend/cuda/libraries.ts), on a fake directory tree: the search order (own
// variable, MOETS_CUDA_LIB_DIR, the loader, CUDA_HOME, /usr/local/cuda, the driver's folders, pip wheels), the
// companions loaded from the same folder, and the one-line errors. No GPU needed: `open` is a fake dlopen that
// loads files holding "FAKE-ELF", refuses files holding anything else, and finds no bare soname.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MoetsError } from '../../../src/core/errors.ts';
import {
  CUDA_LIBRARIES, LibraryNotFoundError, LOADER, findLibrary, majorOf, sitePackages, withMajor, type SearchContext,
} from '../../../src/backend/cuda/libraries.ts';

const work = mkdtempSync(join(tmpdir(), 'moets-cuda-libs-'));
after(() => rmSync(work, { recursive: true, force: true }));

let treeCount = 0;
/** A fresh tree: `files` maps paths (relative to the tree) to contents. Returns the tree's root. */
function tree(files: Record<string, string>): string {
  const root = join(work, `t${treeCount++}`);
  mkdirSync(root, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

/** A fake dlopen that records what it was asked to open. */
function fakeOpen(): { open: (path: string) => string; opened: string[] } {
  const opened: string[] = [];
  const open = (path: string) => {
    opened.push(path);
    if (!path.startsWith('/')) throw new Error('Failed to load shared library: cannot open shared object file: No such file or directory');
    const content = readFileSync(path, 'utf8');
    if (content !== 'FAKE-ELF') throw new Error('Failed to load shared library: invalid ELF header');
    return path;
  };
  return { open, opened };
}

function ctx(root: string, env: Record<string, string> = {}): SearchContext {
  return { root, env: { PATH: '', ...env } };
}

function expectLibraryError(body: () => unknown, library: string, pattern: RegExp): LibraryNotFoundError {
  try {
    body();
  } catch (err) {
    assert.ok(err instanceof LibraryNotFoundError, `expected a LibraryNotFoundError, got ${String(err)}`);
    assert.ok(err instanceof MoetsError && err.kind === 'device');
    assert.equal(err.library, library);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    assert.match(err.message, pattern);
    return err;
  }
  assert.fail('expected an error');
}

describe('cuda libraries: search order', () => {
  test('the bare soname is tried first, then /usr/local/cuda, then a pip wheel', () => {
    const root = tree({
      'usr/local/cuda/lib64/libnvrtc.so.12': 'FAKE-ELF',
      'site/nvidia/cu13/lib/libnvrtc.so.13': 'FAKE-ELF',
    });
    const { open, opened } = fakeOpen();
    const found = findLibrary(CUDA_LIBRARIES.nvrtc, open, ctx(root, { PYTHONPATH: join(root, 'site') }));
    assert.equal(found.path, join(root, 'usr/local/cuda/lib64/libnvrtc.so.12'));
    assert.equal(found.from, '/usr/local/cuda');
    assert.deepEqual(opened, ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so', found.path]);
  });

  test('a pip wheel (nvidia/cu13/lib), its builtins loaded first from the same folder', () => {
    const root = tree({
      'site/nvidia/cu13/lib/libnvrtc.so.13': 'FAKE-ELF',
      'site/nvidia/cu13/lib/libnvrtc-builtins.so.13.0': 'FAKE-ELF',
    });
    const { open, opened } = fakeOpen();
    const found = findLibrary(CUDA_LIBRARIES.nvrtc, open, ctx(root, { PYTHONPATH: join(root, 'site') }));
    const lib = join(root, 'site/nvidia/cu13/lib');
    assert.equal(found.path, join(lib, 'libnvrtc.so.13'));
    assert.equal(found.from, 'a pip nvidia-* wheel');
    assert.deepEqual(opened.slice(-2), [join(lib, 'libnvrtc-builtins.so.13.0'), join(lib, 'libnvrtc.so.13')]);
  });

  test('CUDA_HOME comes before /usr/local/cuda, and its targets/x86_64-linux/lib is searched', () => {
    const root = tree({
      'usr/local/cuda/lib64/libcublas.so.13': 'FAKE-ELF',
      'toolkit/targets/x86_64-linux/lib/libcublas.so.12': 'FAKE-ELF',
    });
    const found = findLibrary(CUDA_LIBRARIES.cublas, fakeOpen().open, ctx(root, { CUDA_HOME: join(root, 'toolkit') }));
    assert.equal(found.path, join(root, 'toolkit/targets/x86_64-linux/lib/libcublas.so.12'));
    assert.equal(found.from, 'CUDA_HOME');
  });

  test('MOETS_CUDA_LIB_DIR comes before the loader', () => {
    const root = tree({ 'mine/libcublasLt.so.13': 'FAKE-ELF' });
    const { open, opened } = fakeOpen();
    const found = findLibrary(CUDA_LIBRARIES.cublasLt, open, ctx(root, { MOETS_CUDA_LIB_DIR: join(root, 'mine') }));
    assert.equal(found.from, 'MOETS_CUDA_LIB_DIR');
    assert.deepEqual(opened, [join(root, 'mine/libcublasLt.so.13')]);
  });

  test("a library's own variable, as a file or a folder, is the only place tried", () => {
    const root = tree({
      'usr/local/cuda/lib64/libcublas.so.13': 'FAKE-ELF',
      'custom/libcublas-special.so': 'FAKE-ELF',
      'folder/libcublas.so.12': 'FAKE-ELF',
    });
    const { open, opened } = fakeOpen();
    const file = findLibrary(CUDA_LIBRARIES.cublas, open, ctx(root, { MOETS_LIBCUBLAS: join(root, 'custom/libcublas-special.so') }));
    assert.deepEqual([file.path, file.from], [join(root, 'custom/libcublas-special.so'), 'MOETS_LIBCUBLAS']);
    assert.deepEqual(opened, [file.path]);
    const folder = findLibrary(CUDA_LIBRARIES.cublas, open, ctx(root, { MOETS_LIBCUBLAS: join(root, 'folder') }));
    assert.equal(folder.path, join(root, 'folder/libcublas.so.12'));
  });

  test('libcuda: the driver folders, never a toolkit folder (whose libcuda is a stub)', () => {
    const stubOnly = tree({ 'usr/local/cuda/lib64/libcuda.so.1': 'FAKE-ELF' });
    expectLibraryError(() => findLibrary(CUDA_LIBRARIES.cuda, fakeOpen().open, ctx(stubOnly)), 'cuda', /libcuda\.so\.1 \(the NVIDIA driver library\) was not found/);
    const driver = tree({ 'usr/local/nvidia/lib64/libcuda.so.1': 'FAKE-ELF' });
    assert.equal(findLibrary(CUDA_LIBRARIES.cuda, fakeOpen().open, ctx(driver)).path, join(driver, 'usr/local/nvidia/lib64/libcuda.so.1'));
  });

  test('a virtual environment found through the python3 on PATH', () => {
    const root = tree({
      'venv/bin/python3': '#!/bin/sh',
      'venv/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12': 'FAKE-ELF',
    });
    const found = findLibrary(CUDA_LIBRARIES.cublas, fakeOpen().open, ctx(root, { PATH: `/nonexistent/bin:${join(root, 'venv/bin')}` }));
    assert.equal(found.path, join(root, 'venv/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12'));
  });
});

describe('cuda libraries: errors', () => {
  test('nothing found: one line naming the library, where moets looked, and the variables', () => {
    const root = tree({ 'site/nvidia/placeholder': '' });
    const err = expectLibraryError(
      () => findLibrary(CUDA_LIBRARIES.nvrtc, fakeOpen().open, ctx(root, { PYTHONPATH: join(root, 'site') })),
      'nvrtc', /^libnvrtc \(NVRTC, CUDA's run-time compiler\) was not found \(looked for libnvrtc\.so\.13, libnvrtc\.so\.12, libnvrtc\.so in the loader's path, /,
    );
    assert.ok(err.message.includes(join(root, 'usr/local/cuda/lib64')), err.message);
    assert.ok(err.message.includes(join(root, 'site/nvidia/cu13/lib')), err.message);
    assert.match(err.message, /; install the CUDA toolkit 12 or 13 \(or pip install nvidia-cuda-nvrtc\), or set MOETS_LIBNVRTC to the library file \(or MOETS_CUDA_LIB_DIR to its folder\)$/);
    assert.equal(err.viaEnv, false);
  });

  test('a file that is there but does not load is named, with the reason', () => {
    const root = tree({ 'usr/local/cuda/lib64/libcublasLt.so.13': 'not a library' });
    expectLibraryError(() => findLibrary(CUDA_LIBRARIES.cublasLt, fakeOpen().open, ctx(root)), 'cublasLt',
      new RegExp(`^libcublasLt \\(cuBLASLt\\) was found, but ${join(root, 'usr/local/cuda/lib64/libcublasLt.so.13')} could not be loaded \\(Failed to load shared library: invalid ELF header\\); install`));
  });

  test("a library's variable that names a missing file, or one that does not load", () => {
    const root = tree({ 'bad/libcuda.so.1': 'garbage', 'usr/local/nvidia/lib64/libcuda.so.1': 'FAKE-ELF' });
    const missing = join(root, 'nope/libcuda.so.1');
    const e1 = expectLibraryError(() => findLibrary(CUDA_LIBRARIES.cuda, fakeOpen().open, ctx(root, { MOETS_LIBCUDA: missing })), 'cuda',
      new RegExp(`^MOETS_LIBCUDA=${missing} does not exist; point MOETS_LIBCUDA at libcuda\\.so\\.1 \\(or its folder\\), or unset it$`));
    assert.equal(e1.viaEnv, true);
    expectLibraryError(() => findLibrary(CUDA_LIBRARIES.cuda, fakeOpen().open, ctx(root, { MOETS_LIBCUDA: join(root, 'bad/libcuda.so.1') })), 'cuda',
      /does not hold a loadable libcuda\.so\.1 \(the NVIDIA driver library\): .*could not be loaded \(Failed to load shared library: invalid ELF header\); point MOETS_LIBCUDA/);
  });
});

describe('cuda libraries: helpers', () => {
  test('site-packages: PYTHONPATH, VIRTUAL_ENV, ~/.local and /usr/lib/python3*/dist-packages; missing ones dropped', () => {
    const root = tree({
      'pp/marker': '',
      'venv/lib/python3.11/site-packages/marker': '',
      'home/.local/lib/python3.12/site-packages/marker': '',
      'usr/lib/python3/dist-packages/marker': '',
      'usr/local/lib/python3.12/dist-packages/marker': '',
      'usr/local/lib/python2.7/site-packages/marker': '',
    });
    const sites = sitePackages(ctx(root, {
      PYTHONPATH: `${join(root, 'pp')}:${join(root, 'missing')}`, VIRTUAL_ENV: join(root, 'venv'), HOME: join(root, 'home'),
    }));
    assert.deepEqual(sites, [
      join(root, 'pp'),
      join(root, 'venv/lib/python3.11/site-packages'),
      join(root, 'home/.local/lib/python3.12/site-packages'),
      join(root, 'usr/local/lib/python3.12/dist-packages'),
      join(root, 'usr/lib/python3/dist-packages'),
    ]);
  });

  test('libcublas is looked for in the major version of the libcublasLt found', () => {
    assert.equal(majorOf('/x/libcublasLt.so.13'), '13');
    assert.equal(majorOf('/x/libcublasLt.so.12.4.5'), '12');
    assert.equal(majorOf('/x/libcublasLt.so'), undefined);
    assert.deepEqual(withMajor(CUDA_LIBRARIES.cublas, '12').sonames, ['libcublas.so.12']);
    assert.deepEqual(withMajor(CUDA_LIBRARIES.cublas, undefined).sonames, CUDA_LIBRARIES.cublas.sonames);
    assert.deepEqual(withMajor(CUDA_LIBRARIES.cublas, '99').sonames, CUDA_LIBRARIES.cublas.sonames);
    assert.equal(LOADER, "the loader's path");
  });
});

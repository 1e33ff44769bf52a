// The disk cache of compiled kernels (src/backend/cuda/compile-cache.ts), with a fake compiler in place of NVRTC:
// one compile per distinct (source, options, arch, compiler version), hits across cache instances (processes),
// the architecture option, recovery from a damaged file, an unwritable folder, and the cache folder's default.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CompileCache, cacheKey, defaultCacheDir, isElf, type CompileRequest } from '../../../src/backend/cuda/compile-cache.ts';

const work = mkdtempSync(join(tmpdir(), 'moets-compile-cache-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(work, `cache${dirCount++}`);

/** A fake NVRTC: an "ELF" whose body is a hash of what it was given, and a log of its calls. */
function fakeCompiler(): { compile: (s: string, n: string, o: readonly string[]) => Uint8Array; calls: { name: string; options: string[] }[] } {
  const calls: { name: string; options: string[] }[] = [];
  const compile = (source: string, name: string, options: readonly string[]) => {
    calls.push({ name, options: [...options] });
    const body = createHash('sha256').update(source).update(options.join(' ')).digest();
    return Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, ...body]);
  };
  return { compile, calls };
}

const REQUEST: CompileRequest = {
  source: 'extern "C" __global__ void add_f32(float* o, const float* a, const float* b, unsigned long long n) {}',
  name: 'elementwise.cu', arch: 'sm_90', options: ['--std=c++17'],
};

describe('cuda compile cache', () => {
  test('compiles once, then reads the cubin back, also from a new cache instance', () => {
    const dir = freshDir();
    const nvrtc = fakeCompiler();
    const first = new CompileCache(nvrtc.compile, '13.0', dir);
    const a = first.compile(REQUEST);
    const b = first.compile(REQUEST);
    const c = new CompileCache(nvrtc.compile, '13.0', dir).compile(REQUEST);
    assert.equal(nvrtc.calls.length, 1);
    assert.deepEqual([a.cached, b.cached, c.cached], [false, true, true]);
    assert.deepEqual(b.cubin, a.cubin);
    assert.deepEqual(c.cubin, a.cubin);
    assert.deepEqual(first.stats, { compiled: 1, hits: 1 });
    assert.equal(a.file, join(dir, 'kernels', `${cacheKey(REQUEST, '13.0')}.cubin`));
    assert.match(a.file, /[0-9a-f]{64}\.cubin$/);
    assert.deepEqual(readdirSync(join(dir, 'kernels')), [`${cacheKey(REQUEST, '13.0')}.cubin`]);
  });

  test('the architecture goes to NVRTC as --gpu-architecture, before the other options', () => {
    const nvrtc = fakeCompiler();
    const cache = new CompileCache(nvrtc.compile, '13.0', freshDir());
    cache.compile(REQUEST);
    cache.compile({ ...REQUEST, arch: 'sm_90a' });
    assert.deepEqual(nvrtc.calls, [
      { name: 'elementwise.cu', options: ['--gpu-architecture=sm_90', '--std=c++17'] },
      { name: 'elementwise.cu', options: ['--gpu-architecture=sm_90a', '--std=c++17'] },
    ]);
  });

  test('source, options, architecture and compiler version each change the key', () => {
    const variants: [CompileRequest, string][] = [
      [REQUEST, '13.0'],
      [{ ...REQUEST, source: `${REQUEST.source} ` }, '13.0'],
      [{ ...REQUEST, options: ['--std=c++20'] }, '13.0'],
      [{ ...REQUEST, options: ['--std=c++17', '-lineinfo'] }, '13.0'],
      [{ ...REQUEST, arch: 'sm_90a' }, '13.0'],
      [{ ...REQUEST, arch: 'sm_80' }, '13.0'],
      [REQUEST, '12.8'],
    ];
    const keys = variants.map(([req, version]) => cacheKey(req, version));
    assert.equal(new Set(keys).size, variants.length);
    assert.equal(cacheKey({ ...REQUEST, name: 'renamed.cu' }, '13.0'), keys[0], 'the file name alone does not change the cubin');
    const nvrtc = fakeCompiler();
    const dir = freshDir();
    for (const [req, version] of variants) new CompileCache(nvrtc.compile, version, dir).compile(req);
    assert.equal(nvrtc.calls.length, variants.length);
  });

  test('a damaged cached file is compiled again and replaced', () => {
    const dir = freshDir();
    const nvrtc = fakeCompiler();
    const good = new CompileCache(nvrtc.compile, '13.0', dir).compile(REQUEST);
    for (const damage of [Uint8Array.of(), Uint8Array.of(0x7f, 0x45), Buffer.from('<html>proxy error</html>')]) {
      writeFileSync(good.file, damage);
      const again = new CompileCache(nvrtc.compile, '13.0', dir).compile(REQUEST);
      assert.equal(again.cached, false);
      assert.deepEqual(again.cubin, good.cubin);
      assert.equal(new CompileCache(nvrtc.compile, '13.0', dir).compile(REQUEST).cached, true);
    }
    assert.equal(nvrtc.calls.length, 4);
  });

  test('an unwritable cache folder still gives the compiled kernel', () => {
    const blocked = join(freshDir(), 'file-not-folder');
    mkdirSync(join(blocked, '..'), { recursive: true });
    writeFileSync(blocked, 'a file where the cache folder should be');
    const nvrtc = fakeCompiler();
    const cache = new CompileCache(nvrtc.compile, '13.0', blocked);
    assert.ok(isElf(cache.compile(REQUEST).cubin));
    assert.equal(cache.compile(REQUEST).cached, false);
    assert.equal(nvrtc.calls.length, 2);
  });

  test('a failed compile throws and leaves nothing in the cache', () => {
    const dir = freshDir();
    const failing = () => {
      throw new Error('nvrtcCompileProgram(elementwise.cu, --gpu-architecture=sm_90) failed: NVRTC_ERROR_COMPILATION');
    };
    assert.throws(() => new CompileCache(failing, '13.0', dir).compile(REQUEST), /NVRTC_ERROR_COMPILATION/);
    assert.equal(existsSync(join(dir, 'kernels', `${cacheKey(REQUEST, '13.0')}.cubin`)), false);
  });

  test('the cache folder: MOETS_CACHE_DIR, else XDG_CACHE_HOME/moets, else ~/.cache/moets', () => {
    assert.equal(defaultCacheDir({ MOETS_CACHE_DIR: '/m', XDG_CACHE_HOME: '/x' }), '/m');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/moets');
    assert.equal(defaultCacheDir({}), join(homedir(), '.cache', 'moets'));
    assert.equal(new CompileCache(fakeCompiler().compile, '13.0', '/m').dir, '/m/kernels');
  });
});

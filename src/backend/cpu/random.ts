// randomNormal on the CPU: the same counter-based generator as the CUDA kernel (cuda/kernels/random.cu), so both
// backends store the same values for the same (shape, dtype, seed, std). Element i of the stream `seed`:
//   h  = splitmix64(splitmix64(seed) ^ i)                          (64-bit, wrapping)
//   u1 = ((h >> 40) + 1) / (2^24 + 1)  in (0, 1],   u2 = (h & (2^24 - 1)) / 2^24  in [0, 1)
//   z  = sqrt(-2 ln u1) · cos(2π u2)                                in float64
//   value = f32(std · z), then rounded to the storage dtype.
// The 64-bit arithmetic runs on pairs of unsigned 32-bit halves (hi, lo): BigInt would be ~50× slower.

const TWO_32 = 4294967296;

/** The result of the last mul64 / splitmix64 (module state, so the hot loop allocates nothing). */
let hi = 0;
let lo = 0;

/** (ah, al) · (bh, bl) mod 2^64 into (hi, lo); al · bl is split into 16-bit parts so every partial sum is exact. */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const mid = a1 * b0 + a0 * b1; // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  lo = low >>> 0;
  const carry = Math.floor(low / TWO_32) + Math.floor(mid / 65536) + a1 * b1;
  hi = (carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** splitmix64 of (zh, zl) into (hi, lo). */
function splitmix64(zh: number, zl: number): void {
  const sum = zl + 0x7f4a7c15; // z += 0x9e3779b97f4a7c15
  let l = sum >>> 0;
  let h = (zh + 0x9e3779b9 + (sum >= TWO_32 ? 1 : 0)) >>> 0;
  mul64((h ^ (h >>> 30)) >>> 0, (l ^ ((l >>> 30) | (h << 2))) >>> 0, 0xbf58476d, 0x1ce4e5b9); // (z ^ z >> 30) · C1
  h = hi;
  l = lo;
  mul64((h ^ (h >>> 27)) >>> 0, (l ^ ((l >>> 27) | (h << 5))) >>> 0, 0x94d049bb, 0x133111eb); // (z ^ z >> 27) · C2
  h = hi;
  l = lo;
  hi = (h ^ (h >>> 31)) >>> 0; // z ^ z >> 31
  lo = (l ^ ((l >>> 31) | (h << 1))) >>> 0;
}

/** std · z_i for i < n (rounded to f32), z_i the standard normals of stream `seed` (an integer in [0, 2^53)). */
export function hashedNormals(n: number, seed: number, std: number): Float32Array {
  const out = new Float32Array(n);
  splitmix64(Math.floor(seed / TWO_32), seed >>> 0);
  const sh = hi;
  const sl = lo;
  for (let i = 0; i < n; i++) {
    splitmix64((sh ^ Math.floor(i / TWO_32)) >>> 0, (sl ^ i) >>> 0);
    const u1 = ((hi >>> 8) + 1) / 16777217;
    const u2 = (lo & 0xffffff) / 16777216;
    out[i] = std * (Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
  }
  return out;
}

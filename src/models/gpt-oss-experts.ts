// GPT-OSS's expert format (WeightLayout.expertFormat 'gpt-oss') converted at load into the canonical fused layout
// the MoE layer computes with. transformers' GptOssExperts (models/gpt_oss/modeling_gpt_oss.py) computes
// `x @ gate_up_proj[e] + gate_up_proj_bias[e]`, gate = [..., ::2], up = [..., 1::2], then `h @ down_proj[e]`:
//   stored    gate_up_proj [E, D, 2F] (x · W, columns interleaved g0 u0 g1 u1 …), gate_up_proj_bias [E, 2F] (same
//             interleave), down_proj [E, F, D]; down_proj_bias [E, D] is already canonical;
//   or MXFP4  gate_up_proj_blocks [E, 2F, D/32, 16] + _scales [E, 2F, D/32] (rows = the 2F outputs, interleaved),
//             down_proj_blocks [E, D, F/32, 16] + _scales [E, D, F/32]: transformers dequantizes these to
//             [E, 2F, D] / [E, D, F] and transposes them to the stored layout above (integrations/mxfp4.py);
//   canonical gate_up_proj [E, 2F, D] (gate rows, then up rows), gate_up_proj_bias [E, 2F] likewise,
//             down_proj [E, D, F].
// E = experts, D = hidden, F = expert FFN size.
import { DTYPE_BYTES } from '../core/dtype.ts';
import { fail } from '../core/errors.ts';
import { dequantizeMxfp4, MXFP4_BLOCK, MXFP4_BLOCK_BYTES } from '../io/mxfp4.ts';
import type { DerivedTensor, RawTensor, StoredTensors } from './weights.ts';

const EXPERT_TENSOR = /\.experts\.(gate_up_proj|down_proj)(_bias|_blocks)?$/;

/**
 * Canonical name → how to build it from what is stored, for every GPT-OSS expert tensor among `names`
 * (canonical names of the stored tensors). down_proj_bias needs nothing and is left out.
 */
export function gptOssExpertTensors(names: Iterable<string>): Map<string, DerivedTensor> {
  const derived = new Map<string, DerivedTensor>();
  for (const name of names) {
    const match = EXPERT_TENSOR.exec(name);
    if (!match) continue;
    const [proj, suffix] = [match[1]!, match[2]];
    const base = name.slice(0, name.length - (suffix?.length ?? 0));
    if (suffix === '_bias') {
      if (proj === 'gate_up_proj') derived.set(name, (shape, stored) => deinterleavedBias(stored.float(name, shape), shape));
    } else if (suffix === '_blocks') {
      derived.set(base, (shape, stored) => mxfp4Experts(base, proj === 'gate_up_proj', shape, stored));
    } else {
      derived.set(name, (shape, stored) => {
        const [E, rows, cols] = shape as [number, number, number];
        const raw = stored.float(name, [E, cols, rows]);
        return { dtype: raw.dtype, bytes: transposeExperts(raw, E, rows, cols, proj === 'gate_up_proj' ? gateUpOrder(rows) : undefined) };
      });
    }
  }
  return derived;
}

/** Canonical row r of a [2F] gate/up axis comes from interleaved row 2r (gate) or 2(r − F) + 1 (up). */
export function gateUpOrder(twoF: number): Int32Array {
  const F = twoF / 2;
  return Int32Array.from({ length: twoF }, (_, r) => (r < F ? 2 * r : 2 * (r - F) + 1));
}

function mxfp4Experts(base: string, gateUp: boolean, shape: number[], stored: StoredTensors): RawTensor {
  const [E, rows, cols] = shape as [number, number, number];
  if (cols % MXFP4_BLOCK !== 0) fail('format', `${base}_blocks: MXFP4 rows of ${cols} values are not whole blocks of ${MXFP4_BLOCK}; config.json does not match the checkpoint`);
  const G = cols / MXFP4_BLOCK;
  const blocks = stored.bytes(`${base}_blocks`, [E, rows, G, MXFP4_BLOCK_BYTES]);
  const scales = stored.bytes(`${base}_scales`, [E, rows, G]);
  const order = gateUp ? gateUpOrder(rows) : undefined;
  const rowOrder = order ? (r: number) => Math.floor(r / rows) * rows + order[r % rows]! : undefined;
  const values = dequantizeMxfp4(blocks, scales, G, `${base}_blocks`, rowOrder);
  return { dtype: 'f32', bytes: new Uint8Array(values.buffer) };
}

function deinterleavedBias(raw: RawTensor, shape: number[]): RawTensor {
  const [E, twoF] = shape as [number, number];
  const src = elements(raw);
  const dst = src.slice();
  const order = gateUpOrder(twoF);
  for (let e = 0; e < E; e++) for (let r = 0; r < twoF; r++) dst[e * twoF + r] = src[e * twoF + order[r]!]!;
  return { dtype: raw.dtype, bytes: new Uint8Array(dst.buffer) };
}

/** src [E, cols, rows] → dst [E, rows, cols] with dst[e][r][c] = src[e][c][order(r)] (order: identity by default). */
function transposeExperts(raw: RawTensor, E: number, rows: number, cols: number, order?: Int32Array): Uint8Array {
  const src = elements(raw);
  const dst = src.slice();
  const per = rows * cols;
  for (let e = 0; e < E; e++) {
    for (let r = 0; r < rows; r++) {
      const from = e * per + (order ? order[r]! : r);
      const to = e * per + r * cols;
      for (let c = 0; c < cols; c++) dst[to + c] = src[from + c * rows]!;
    }
  }
  return new Uint8Array(dst.buffer);
}

type ElementArray = Uint16Array | Uint32Array;

/** The tensor's elements as raw bit patterns of their width (copied when the bytes are not aligned to it). */
function elements(raw: RawTensor): ElementArray {
  const width = DTYPE_BYTES[raw.dtype];
  const bytes = raw.bytes.byteOffset % width === 0 ? raw.bytes : raw.bytes.slice();
  return width === 2
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
    : new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

// GPT-OSS's MoE tensors for tiny random checkpoints, under the names and in the layouts transformers uses:
// `mlp.router.{weight,bias}`, and experts either plain — gate_up_proj [E, D, 2F] (x · W, gate/up interleaved along
// 2F), gate_up_proj_bias [E, 2F], down_proj [E, F, D], down_proj_bias [E, D] — or with the two weights as MXFP4
// `*_blocks` [E, rows, cols/32, 16] + `*_scales` [E, rows, cols/32] (rows = outputs: 2F interleaved, or D), as
// the released checkpoints ship them. The MXFP4 codes are random bytes; scales 2^-6 .. 2^-4.
//
// E = experts, D = hidden, F = expert FFN size.
import type { TensorToWrite } from '../../src/io/safetensors.ts';
import type { Rng } from './random.ts';

export function gptOssMoeTensors(rng: Rng, p: string, D: number, E: number, F: number, mxfp4: boolean): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  const add = (name: string, shape: number[], std = 0.08) => {
    const values = rng.normals(shape.reduce((a, b) => a * b, 1), std);
    out.push({ name, dtype: 'F32', shape, data: new Uint8Array(values.buffer) });
  };
  const addBytes = (name: string, shape: number[], draw: () => number) => {
    const data = Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, draw);
    out.push({ name, dtype: 'U8', shape, data });
  };
  add(`${p}.mlp.router.weight`, [E, D], 0.3);
  add(`${p}.mlp.router.bias`, [E], 0.2);
  if (mxfp4) {
    for (const [proj, rows, cols] of [['gate_up_proj', 2 * F, D], ['down_proj', D, F]] as const) {
      addBytes(`${p}.mlp.experts.${proj}_blocks`, [E, rows, cols / 32, 16], () => rng.int(256));
      addBytes(`${p}.mlp.experts.${proj}_scales`, [E, rows, cols / 32], () => 121 + rng.int(3));
    }
  } else {
    add(`${p}.mlp.experts.gate_up_proj`, [E, D, 2 * F]);
    add(`${p}.mlp.experts.down_proj`, [E, F, D]);
  }
  add(`${p}.mlp.experts.gate_up_proj_bias`, [E, 2 * F], 0.1);
  add(`${p}.mlp.experts.down_proj_bias`, [E, D], 0.1);
  return out;
}

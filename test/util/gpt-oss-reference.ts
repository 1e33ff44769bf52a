// A float64 plain-loop GPT-OSS forward written from transformers' models/gpt_oss/modeling_gpt_oss.py, for tests:
// it reads the checkpoint's tensors in transformers' own layout (gate_up_proj [E, D, 2F] used as x · W with
// gate = [..., ::2] and up = [..., 1::2]; MXFP4 blocks decoded here from the spec's FP4 table and transposed as
// integrations/mxfp4.py does), so it shares nothing with src/ beyond the safetensors reader.
//
// x: [T, D]  T = tokens, D = hidden, H = heads, Hkv = kv heads, Dh = head dim, E = experts, F = expert FFN size.
import { Checkpoint } from '../../src/io/checkpoint.ts';

const SPEC_FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

export interface StoredTensor { shape: number[]; values: Float64Array }

/** Every tensor of the checkpoint in `dir` as float64, MXFP4 pairs decoded to transformers' [E, cols, rows]. */
export function readGptOssTensors(dir: string): Map<string, StoredTensor> {
  const ckpt = Checkpoint.open(dir);
  const out = new Map<string, StoredTensor>();
  for (const name of ckpt.names()) {
    const info = ckpt.info(name);
    const bytes = ckpt.readBytes(name).slice();
    if (info.dtype === 'F32') out.set(name, { shape: info.shape, values: Float64Array.from(new Float32Array(bytes.buffer)) });
    if (!name.endsWith('_blocks')) continue;
    const [E, rows, G] = info.shape as [number, number, number];
    const scales = ckpt.readBytes(name.replace(/_blocks$/, '_scales'));
    const cols = G * 32;
    const w = new Float64Array(E * rows * cols);
    for (let e = 0; e < E; e++) {
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const byte = bytes[((e * rows + r) * G + Math.floor(c / 32)) * 16 + Math.floor((c % 32) / 2)]!;
          const code = c % 2 === 0 ? byte & 0xf : byte >> 4;
          // dequantized [E, rows, cols], then .transpose(1, 2) → [E, cols, rows]
          w[(e * cols + c) * rows + r] = SPEC_FP4[code]! * 2 ** (scales[(e * rows + r) * G + Math.floor(c / 32)]! - 127);
        }
      }
    }
    out.set(name.replace(/_blocks$/, ''), { shape: [E, cols, rows], values: w });
  }
  ckpt.close();
  return out;
}

export interface GptOssConfig {
  vocab_size: number; hidden_size: number; intermediate_size: number; head_dim: number; num_hidden_layers: number;
  num_attention_heads: number; num_key_value_heads: number; num_local_experts: number; num_experts_per_tok: number;
  sliding_window: number; rms_norm_eps?: number; swiglu_limit?: number;
}

/** GptOssConfig's default YaRN (factor 32, β 32/1, no truncation, 4096 original positions, θ 150000). */
export function defaultYarn(dim: number): { invFreq: number[]; attentionFactor: number } {
  const [base, factor, origMax] = [150000, 32, 4096];
  const correctionDim = (rotations: number) => (dim * Math.log(origMax / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  const [low, high] = [Math.max(correctionDim(32), 0), Math.min(correctionDim(1), dim - 1)];
  const invFreq = Array.from({ length: dim / 2 }, (_, i) => {
    const posFreq = base ** ((2 * i) / dim);
    const extrapolationFactor = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
    return (1 / (factor * posFreq)) * (1 - extrapolationFactor) + (1 / posFreq) * extrapolationFactor;
  });
  return { invFreq, attentionFactor: 0.1 * Math.log(factor) + 1 };
}

/** Logits [T, V] of a full forward over `ids` (layer i slides when i is even, as GptOssConfig's default). */
export function gptOssReferenceLogits(c: GptOssConfig, w: Map<string, StoredTensor>, ids: number[]): Float64Array {
  const t = (name: string) => w.get(name)?.values ?? (() => { throw new Error(`reference: no ${name}`); })();
  const [D, eps] = [c.hidden_size, c.rms_norm_eps ?? 1e-5];
  let x = ids.flatMap((id) => [...t('model.embed_tokens.weight').subarray(id * D, (id + 1) * D)]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    const attended = attention(c, t, p, rmsNorm(x, t(`${p}.input_layernorm.weight`), eps), i % 2 === 0 ? c.sliding_window : Infinity);
    x = x.map((v, j) => v + attended[j]!);
    const moe = experts(c, t, p, rmsNorm(x, t(`${p}.post_attention_layernorm.weight`), eps));
    x = x.map((v, j) => v + moe[j]!);
  }
  return Float64Array.from(linear(rmsNorm(x, t('model.norm.weight'), eps), t('lm_head.weight'), D));
}

function rmsNorm(x: number[], weight: Float64Array, eps: number): number[] {
  const D = weight.length;
  return x.map((v, j) => {
    const row = x.slice(j - (j % D), j - (j % D) + D);
    return (weight[j % D]! * v) / Math.sqrt(row.reduce((s, u) => s + u * u, 0) / D + eps);
  });
}

/** x [T, K] · W [N, K]ᵀ + b (nn.Linear). */
function linear(x: number[], weight: Float64Array, K: number, bias?: Float64Array): number[] {
  const [T, N] = [x.length / K, weight.length / K];
  const out: number[] = [];
  for (let r = 0; r < T; r++) {
    for (let n = 0; n < N; n++) {
      let sum = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) sum += x[r * K + k]! * weight[n * K + k]!;
      out.push(sum);
    }
  }
  return out;
}

function attention(c: GptOssConfig, t: (n: string) => Float64Array, p: string, x: number[], window: number): number[] {
  const [D, H, Hkv, Dh] = [c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim];
  const T = x.length / D;
  const proj = (n: string) => linear(x, t(`${p}.self_attn.${n}_proj.weight`), D, t(`${p}.self_attn.${n}_proj.bias`));
  const { invFreq, attentionFactor } = defaultYarn(Dh);
  // _apply_rotary_emb: first half / second half of each head.
  const rotate = (v: number[], heads: number) => v.map((value, j) => {
    const [pos, d] = [Math.floor(j / (heads * Dh)), j % Dh];
    const half = Dh / 2;
    const angle = pos * invFreq[d % half]!;
    const [cos, sin] = [Math.cos(angle) * attentionFactor, Math.sin(angle) * attentionFactor];
    return d < half ? value * cos - v[j + half]! * sin : value * cos + v[j - half]! * sin;
  });
  const [q, k, v] = [rotate(proj('q'), H), rotate(proj('k'), Hkv), proj('v')];
  const sinks = t(`${p}.self_attn.sinks`);
  const out = new Array<number>(T * H * Dh).fill(0);
  for (let i = 0; i < T; i++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      const keys = Array.from({ length: i + 1 }, (_, j) => j).filter((j) => j > i - window);
      const logits = keys.map((j) => {
        let dot = 0;
        for (let d = 0; d < Dh; d++) dot += q[(i * H + h) * Dh + d]! * k[(j * Hkv + g) * Dh + d]!;
        return dot / Math.sqrt(Dh);
      });
      const max = Math.max(...logits, sinks[h]!);
      const total = logits.reduce((s, l) => s + Math.exp(l - max), Math.exp(sinks[h]! - max));
      keys.forEach((j, n) => {
        for (let d = 0; d < Dh; d++) out[(i * H + h) * Dh + d] += (Math.exp(logits[n]! - max) / total) * v[(j * Hkv + g) * Dh + d]!;
      });
    }
  }
  return linear(out, t(`${p}.self_attn.o_proj.weight`), H * Dh, t(`${p}.self_attn.o_proj.bias`));
}

/** GptOssMLP: router (linear + bias, top-k, softmax over k) and GptOssExperts with its interleaved gate/up. */
export function experts(c: GptOssConfig, t: (n: string) => Float64Array, p: string, x: number[]): number[] {
  const [D, F, E, K, limit] = [c.hidden_size, c.intermediate_size, c.num_local_experts, c.num_experts_per_tok, c.swiglu_limit ?? 7];
  const logits = linear(x, t(`${p}.mlp.router.weight`), D, t(`${p}.mlp.router.bias`));
  const [gateUp, gateUpBias, down, downBias] = ['gate_up_proj', 'gate_up_proj_bias', 'down_proj', 'down_proj_bias'].map((n) => t(`${p}.mlp.experts.${n}`));
  const out: number[] = [];
  for (let r = 0; r < x.length / D; r++) {
    const row = logits.slice(r * E, (r + 1) * E);
    const top = row.map((l, e) => ({ l, e })).sort((a, b) => b.l - a.l || a.e - b.e).slice(0, K);
    const total = top.reduce((s, { l }) => s + Math.exp(l - top[0]!.l), 0);
    const y = new Array<number>(D).fill(0);
    for (const { l, e } of top) {
      const gu = Array.from({ length: 2 * F }, (_, j) => {
        let sum = gateUpBias![e * 2 * F + j]!;
        for (let d = 0; d < D; d++) sum += x[r * D + d]! * gateUp![(e * D + d) * 2 * F + j]!;
        return sum;
      });
      const h = Array.from({ length: F }, (_, f) => {
        const gate = Math.min(gu[2 * f]!, limit);
        const up = Math.min(Math.max(gu[2 * f + 1]!, -limit), limit);
        return (up + 1) * gate / (1 + Math.exp(-1.702 * gate));
      });
      const weight = Math.exp(l - top[0]!.l) / total;
      for (let d = 0; d < D; d++) {
        let sum = downBias![e * D + d]!;
        for (let f = 0; f < F; f++) sum += h[f]! * down![(e * F + f) * D + d]!;
        y[d] += weight * sum;
      }
    }
    out.push(...y);
  }
  return out;
}

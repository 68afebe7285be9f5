#!/usr/bin/env python3
"""Chat-template goldens: what Hugging Face's apply_chat_template renders, for aether's minijinja
environment (core/src/chat_template/) to match byte for byte.

Requires: Python 3.11, jinja2==3.1.6, gguf==0.19.0
    pip install jinja2==3.1.6 gguf==0.19.0
    python3 tests/scripts/make_template_goldens.py          # run from the repository root

Reads models/SmolLM2-135M-Instruct.Q4_1.gguf (its tokenizer.chat_template and special tokens) and
models/templates/*.jinja (real templates from the llama-cpp-python sdist; see
scripts/fetch-models.sh). Template files are not copied into the goldens: the Rust test reads them
from models/ too. Inline templates (ChatML, and FEATURES, a probe of the environment's corners)
are stored in the goldens with their source.

Writes tests/goldens/templates/chat_templates.json:
    {"jinja2": version, "now": [y, m, d, H, M, S], "conversations": {name: [{role, content}]},
     "templates": [{"name", "source": {"file"|"gguf"|"inline": ..}, "bos_token", "eos_token",
                    "cases": [{"conversation", "add_generation_prompt",
                               "output" | "error": {"kind": "raise"|"render", "message"}}]}],
     "unsupported": {file: reason}}

The environment mirrors transformers' chat_template_utils._compile_jinja_template: an
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension and the `{% generation %}` tag of its AssistantTracker, tojson = json.dumps(ensure_ascii=False, ...), raise_exception raising TemplateError,
strftime_now formatting the clock (here a fixed NOW); and its render call: messages, tools=None,
documents=None, add_generation_prompt, and the special tokens.
"""

import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("AETHER_MODELS_DIR", os.path.join(ROOT, "models"))
OUT = os.path.join(ROOT, "tests", "goldens", "templates", "chat_templates.json")

# A Sunday with a single-digit day and hour, so %d/%-d/%I padding and weekday names show; not
# 26 Jul 2024, which Llama 3.x templates print when strftime_now is missing.
NOW = datetime(2025, 3, 9, 9, 5, 7)

# Must equal aether_core::chat_template::CHATML_TEMPLATE (the test checks).
CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Not a model's template: the environment's corners in one place (tojson layouts, strftime,
# Python methods and printing, loop controls, whitespace control, filters).
FEATURES = """\
{%- set ns = namespace(count=0, roles=[]) -%}
{% for m in messages %}
  {% if m.role == 'system' %}{% continue %}{% endif %}
  {% set ns.count = ns.count + 1 %}
  {% if ns.count > 3 %}{% break %}{% endif %}
[{{ loop.index }}/{{ loop.length }} {{ m.role | upper }}{{ ' first' if loop.first }}{{ ' last' if loop.last }}] {{ m.content | trim }}
{% endfor %}
json: {{ messages | tojson }}
indent: {{ messages[:2] | tojson(indent=2) }}
ascii: {{ messages | map(attribute='content') | list | tojson(ensure_ascii=true) }}
compact: {{ {"b": [1, 2.5, none, true], "a": {}} | tojson(separators=[",", ":"], sort_keys=true) }}
date: {{ strftime_now("%d %b %Y") }} | {{ strftime_now("%Y-%m-%d %H:%M:%S") }} | {{ strftime_now("%A, %B %-d, %I %p (%j)") }}
{%- macro show(x) %}<{{ x }}>{% endmacro %}
values: {{ show(none) }}{{ show(true) }}{{ show(false) }}{{ show(1) }}{{ show(2.50) }}{{ show(1e-5) }}{{ show(10 / 4) }}{{ show([1, 'two', none]) }}{{ show({'k': 'v'}) }}
string: {{ none | string }} {{ [true] | string }} {{ 7 | string }}
methods: {{ messages[-1].content.strip() }} | {{ messages[-1].content.split() | join(',') }} | {{ messages[-1].content.startswith('  ') }} | {{ messages[-1].content.endswith(('x', '\\n')) }} | {{ 'a-b-c'.split('-', 1) }} | {{ '--x--'.lstrip('-') }} | {{ 'Mixed Case'.lower() }}{{ 'mixed'.upper() }}{{ 'hello world'.title() }} | {{ 'a.b'.replace('.', '/') }}
dict: {% for k, v in messages[0].items() %}{{ k }}={{ v | length }} {% endfor %}{{ messages[0].get('missing', 'default') }} {{ messages[0].keys() | list }}
filters: {{ messages | map(attribute='role') | join('|') }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | first }} {{ messages[::-1][0].role }} {{ 'xyz' | capitalize }} {{ missing_var | default('dflt') }} {{ 'abc'[1:] }} {{ [3, 1, 2] | sort | join }} {{ 'ab' in 'cabd' }} {{ 'role' in messages[0] }}
math: {{ 10 / 5 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [1, 2, 3] | sum }} {{ [4, 9, 2] | max }} {{ range(3) | list }} {{ 1 == 1.0 }} {{ true and 'x' }} {{ none or 'y' }} {{ -3 | abs }} {{ 2.567 | round(1) }} {{ 5 | float }} {{ '42' | int + 1 }}
loop: {% for m in messages %}{{ loop.previtem.role if loop.previtem else '-' }}>{{ m.role[:1] }}{{ loop.cycle('a', 'b') }}{{ loop.revindex }} {% endfor %}{% set block %}set {{ 'block' }}{% endset %}{{ block }} {{ messages[0].role.upper() if messages else 'no messages' }}
tests: {{ messages is sequence }} {{ messages[0] is mapping }} {{ 'x' is string }} {{ 1 is number }} {{ missing_var is defined }} {{ none is none }} {{ tools is iterable }} {{ 'x' is iterable }} {{ missing_var is iterable }} {{ 'x' is sequence }} {{ {} is sequence }} {{ none is sequence }}
{#- a comment #}
{% raw %}{{ raw }}{% endraw %}
{% if add_generation_prompt %}
    <gen>
{% endif %}
"""

# (file in models/templates, bos_token, eos_token): the special tokens of the model the template
# ships with (tokenizer_config.json), "" where the model has none. These get every case in CASES;
# every other template in models/templates (but UNSUPPORTED) gets SHORT_CASES with "<s>"/"</s>",
# to keep the goldens small while still rendering each one.
LLAMA3 = ("<|begin_of_text|>", "<|eot_id|>")
DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
TEMPLATE_FILES = [
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", *LLAMA3),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", *LLAMA3),
    ("meta-llama-Llama-3.3-70B-Instruct.jinja", *LLAMA3),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>"),
    ("Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>"),
    ("Qwen-QwQ-32B.jinja", "", "<|im_end|>"),
    ("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>"),
    ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
    ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>"),
    ("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>"),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", *DEEPSEEK),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", *DEEPSEEK),
    ("deepseek-ai-DeepSeek-V3.1.jinja", *DEEPSEEK),
    ("ibm-granite-granite-3.3-2B-Instruct.jinja", "<|end_of_text|>", "<|end_of_text|>"),
    ("LFM2-8B-A1B.jinja", "<|startoftext|>", "<|im_end|>"),
    ("moonshotai-Kimi-K2.jinja", "", "<|im_end|>"),
    ("openai-gpt-oss-120b.jinja", "<|startoftext|>", "<|return|>"),
    ("google-gemma-4-31B-it.jinja", "<bos>", "<eos>"),
    ("GLM-4.6.jinja", "", "<|endoftext|>"),
]

# Templates in models/templates that the goldens leave out, and why.
UNSUPPORTED = {
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": "tool-use variant: iterates `tools`, which is None without tools (jinja2 fails too)",
    "fireworks-ai-llama-3-firefunction-v2.jinja": "needs a `functions` variable HF does not pass (jinja2 fails too)",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": "tool-use variant: iterates `tools`, which is None without tools (jinja2 fails too; minijinja iterates None as empty)",
    "CohereForAI-c4ai-command-r-plus-tool_use.jinja": "tool-use variant: iterates `tools`, which is None without tools (jinja2 fails too; minijinja iterates None as empty)",
}

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is Rust?"},
        {"role": "assistant", "content": "A systems programming language."},
        {"role": "user", "content": "And Python?"},
    ],
    "assistant_last": [
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "Yes."},
    ],
    "tricky_content": [
        {"role": "system", "content": "Quotes: \"double\" and 'single' \\backslash {{ not_a_tag }} {% if %} </s>"},
        {"role": "user", "content": "  Ünïcödé 日本語 🚀 café\n\nline two\ttab  \n"},
        {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nAnswer with \"quotes\"\n"},
        {"role": "user", "content": "Trailing spaces and a newline  \n"},
    ],
    "not_alternating": [
        {"role": "user", "content": "First."},
        {"role": "user", "content": "Second."},
    ],
    "system_only": [{"role": "system", "content": "Just a system prompt."}],
    "empty": [],
}

# (conversation, add_generation_prompt) rendered for every template.
CASES = [
    ("user_only", True),
    ("user_only", False),
    ("system_user", True),
    ("multi_turn", True),
    ("multi_turn", False),
    ("system_multi_turn", True),
    ("assistant_last", False),
    ("tricky_content", True),
    ("not_alternating", True),
    ("system_only", True),
    ("empty", True),
]


class GenerationTag(jinja2.ext.Extension):
    """`{% generation %}…{% endgeneration %}` as HF's AssistantTracker renders it when it is not
    collecting an assistant mask (always, for apply_chat_template's text): just the body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()

# The cases the other templates get: a full conversation, and awkward content.
SHORT_CASES = [("system_multi_turn", True), ("tricky_content", True)]


def make_env():
    """transformers' chat-template environment, with the clock fixed at NOW."""

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_cases(env, source, bos, eos, which):
    template = env.from_string(source)
    cases = []
    for conv, gen in which:
        case = {"conversation": conv, "add_generation_prompt": gen}
        try:
            case["output"] = template.render(
                messages=CONVERSATIONS[conv],
                tools=None,
                documents=None,
                add_generation_prompt=gen,
                bos_token=bos,
                eos_token=eos,
            )
        except Exception as e:  # noqa: BLE001 - every failure is a golden too
            # raise_exception raises TemplateError itself; engine failures are its subclasses
            # (UndefinedError, ...) or other Python errors.
            kind = "raise" if type(e) is TemplateError else "render"
            case["error"] = {"kind": kind, "message": str(e) if kind == "raise" else f"{type(e).__name__}: {e}"}
        cases.append(case)
    return cases


def smollm2():
    from gguf import GGUFReader

    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    r = GGUFReader(os.path.join(MODELS, name))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    source = r.fields["tokenizer.chat_template"].contents()
    bos = tokens[r.fields["tokenizer.ggml.bos_token_id"].contents()]
    eos = tokens[r.fields["tokenizer.ggml.eos_token_id"].contents()]
    return {"name": "SmolLM2-135M-Instruct", "source": {"gguf": name}}, source, bos, eos


def main():
    env = make_env()
    entries = [(*smollm2(), CASES)]
    entries.append(({"name": "chatml-fallback", "source": {"inline": CHATML}}, CHATML, "", "", CASES))
    entries.append(({"name": "features", "source": {"inline": FEATURES}}, FEATURES, "<s>", "</s>", CASES))
    template_dir = os.path.join(MODELS, "templates")
    primary = {file for file, _, _ in TEMPLATE_FILES}
    others = sorted(f for f in os.listdir(template_dir) if f.endswith(".jinja") and f not in primary | UNSUPPORTED.keys())
    for file, bos, eos, which in [(*t, CASES) for t in TEMPLATE_FILES] + [(f, "<s>", "</s>", SHORT_CASES) for f in others]:
        with open(os.path.join(template_dir, file), encoding="utf-8") as f:
            source = f.read()
        entries.append(({"name": file.removesuffix(".jinja"), "source": {"file": file}}, source, bos, eos, which))

    templates = []
    for head, source, bos, eos, which in entries:
        cases = render_cases(env, source, bos, eos, which)
        templates.append({**head, "bos_token": bos, "eos_token": eos, "cases": cases})
        n_err = sum("error" in c for c in cases)
        print(f"{head['name']}: {len(cases)} cases, {n_err} errors", file=sys.stderr)

    golden = {
        "generator": "tests/scripts/make_template_goldens.py",
        "jinja2": jinja2.__version__,
        "now": [NOW.year, NOW.month, NOW.day, NOW.hour, NOW.minute, NOW.second],
        "conversations": CONVERSATIONS,
        "templates": templates,
        "unsupported": UNSUPPORTED,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()

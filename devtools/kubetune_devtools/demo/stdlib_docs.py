"""Demo data built offline from real English text: the docstrings of Python's standard library.

Every machine with Python has this text, so the demo needs no download. Each row describes one
public function: its qualified name, its module, its one-sentence summary and the documentation
that follows the summary. Templates turn the rows into instruction tasks (see `DEMO_TASKS`).
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
from typing import Any, Literal

# Modules whose public functions carry good docstrings; missing ones are skipped (platform builds differ).
MODULES = (
    "os",
    "os.path",
    "shutil",
    "json",
    "re",
    "string",
    "textwrap",
    "itertools",
    "functools",
    "collections",
    "math",
    "statistics",
    "random",
    "datetime",
    "pathlib",
    "urllib.parse",
    "base64",
    "hashlib",
    "heapq",
    "bisect",
    "csv",
    "glob",
    "fnmatch",
    "difflib",
    "html",
    "gzip",
    "zipfile",
    "tarfile",
    "tempfile",
    "uuid",
    "secrets",
    "calendar",
    "operator",
    "copy",
    "pprint",
    "shlex",
    "struct",
    "time",
    "zlib",
    "binascii",
    "colorsys",
    "keyword",
    "locale",
    "platform",
    "socket",
    "subprocess",
    "sys",
    "threading",
    "logging",
    "email.utils",
    "ipaddress",
    "mimetypes",
    "enum",
    "dataclasses",
    "typing",
    "contextlib",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "unicodedata",
    "codecs",
    "io",
    "pickle",
    "warnings",
    "signal",
    "select",
    "asyncio",
    "concurrent.futures",
    "sched",
)

EXCERPT_CHARS = 160
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _summary_and_details(doc: str) -> tuple[str, str] | None:
    paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n") if p.strip()]
    if not paragraphs:
        return None
    summary = _SENTENCE_END.split(paragraphs[0])[0]
    details = " ".join(paragraphs)[len(summary) :].strip()
    # Built-ins often open with their signature ("sleep(seconds)") instead of a sentence.
    if not (15 <= len(summary) <= 140) or not summary.endswith(".") or len(details) < 20:
        return None
    return summary, details


def _function_rows(module_name: str) -> list[dict[str, Any]]:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    rows = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
            continue
        if getattr(obj, "__module__", None) not in (module_name, module.__name__):
            continue
        doc = inspect.getdoc(obj)
        parts = _summary_and_details(doc) if doc else None
        if parts is None:
            continue
        summary, details = parts
        rows.append(
            {
                "name": f"{module_name}.{name}",
                "module": module_name,
                "function": name,
                "summary": summary,
                "details": details[:600],
                # A short excerpt keeps the summarize prompts within a small maxSeqLength on a CPU.
                "excerpt": details[:EXCERPT_CHARS],
            }
        )
    return rows


def build_rows(seed: int = 0) -> list[dict[str, Any]]:
    """All rows, de-duplicated by qualified name, in a seeded order."""
    seen: dict[str, dict[str, Any]] = {}
    for module_name in MODULES:
        for row in _function_rows(module_name):
            seen.setdefault(row["name"], row)
    rows = list(seen.values())
    random.Random(seed).shuffle(rows)
    return rows


PromptFormat = Literal["plain", "chatml"]

TARGET_TASK = "module"
"""The task the demo fine-tunes on: name the module of a function. Zero-shot, an instruct model answers with a
sentence ("The `os.path.join` function is defined in the `os.path` module ..."), so its exact match is 0; the
templates teach it the task's answer."""
GENERAL_TASK = "summarize"
"""Never trained on: a one-sentence summary of a function from its documentation. A pretrained instruct model
can already do it (ROUGE-L clearly above 0), so it probes what fine-tuning does to prior ability."""

# FLAN-style: several instruction templates per task; `{{ field }}` is a field of a row.
INSTRUCTIONS: dict[str, list[str]] = {
    TARGET_TASK: ["Which module defines {{ name }}?", "Name the module of the function {{ name }}."],
    GENERAL_TASK: [
        "Write a one-sentence summary of this Python function.\n"
        "Function: {{ name }}\nDocumentation: {{ excerpt }}",
        "Summarize what {{ name }} does.\n{{ excerpt }}",
    ],
}
ANSWERS = {TARGET_TASK: "{{ module }}", GENERAL_TASK: "{{ summary }}"}
_PLAIN_CUE = {TARGET_TASK: "Answer:", GENERAL_TASK: "Summary:"}
CHATML_USER_TURN = "<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n"
"""SmolLM2-Instruct's chat format (its tokenizer's chat template, without the default system turn): an
instruct model answers in the format it was tuned on. The trainer appends (and trains) EOS, `<|im_end|>`."""


def _template(task: str, instruction: str, prompt_format: PromptFormat) -> dict[str, str]:
    if prompt_format == "chatml":
        return {"prompt": CHATML_USER_TURN.format(instruction=instruction), "completion": ANSWERS[task]}
    return {"prompt": f"{instruction}\n{_PLAIN_CUE[task]}", "completion": " " + ANSWERS[task]}


def task_specs(names: list[str], prompt_format: PromptFormat) -> list[dict[str, Any]]:
    """The named tasks as FineTuneJob/EvalJob `tasks` entries, their prompts in the model's format."""
    return [
        {"name": name, "templates": [_template(name, text, prompt_format) for text in INSTRUCTIONS[name]]}
        for name in names
    ]

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
from typing import Any

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


# Two instruction tasks over the same rows, FLAN-style: several templates each.
DEMO_TASKS: list[dict[str, Any]] = [
    {
        "name": "summarize",
        "templates": [
            {
                "prompt": "Write a one-sentence summary of this Python function.\n"
                "Function: {{ name }}\nDocumentation: {{ excerpt }}\nSummary:",
                "completion": " {{ summary }}",
            },
            {
                "prompt": "Summarize what {{ name }} does.\n{{ excerpt }}\nSummary:",
                "completion": " {{ summary }}",
            },
        ],
    },
    {
        "name": "module",
        "templates": [
            {"prompt": "Which module defines {{ name }}?\nAnswer:", "completion": " {{ module }}"},
            {"prompt": "Name the module of the function {{ name }}.\nAnswer:", "completion": " {{ module }}"},
        ],
    },
]

"""Prompt templates that turn dataset rows into (prompt, completion) pairs.

Two syntaxes, chosen per template string:
- Jinja2 (`{{ review_body }}`, `{% if ... %}`), rendered in a *sandboxed* environment because templates come
  from users, with `StrictUndefined` so a missing field is an error rather than an empty string;
- FLAN-style `str.format` (`{review_body}`), used when the string has no `{{`/`{%`; attribute and index
  access are refused (`{x.__class__}` could reach Python internals).

Several templates per task: one is chosen per row with a seeded RNG (FLAN's template sampling), so the
choice is reproducible. No torch import.

Stable API: `PromptTemplate`, `compile_templates(specs, task)`, `render_row(templates, row, rng, where)`.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kubetune_operator.data.errors import TemplateError

_JINJA = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)


def is_jinja(source: str) -> bool:
    return "{{" in source or "{%" in source or "{#" in source


class _TextTemplate:
    """One template string, compiled once."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        self._jinja: jinja2.Template | None = None
        self.format_fields: list[str] = []
        if is_jinja(source):
            try:
                self._jinja = _JINJA.from_string(source)
            except jinja2.TemplateSyntaxError as err:
                raise TemplateError(
                    f"{where}: invalid Jinja2 template: {err.message} (line {err.lineno})"
                ) from err
            return
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as err:
            raise TemplateError(f"{where}: invalid {{field}} template: {err}") from err
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if not field.isidentifier():
                raise TemplateError(f"{where}: template field {{{field}}} must be a plain field name")
            if spec or conversion:
                raise TemplateError(
                    f"{where}: template field {{{field}}}: format specs/conversions not allowed"
                )
            self.format_fields.append(field)

    def render(self, row: Mapping[str, Any], row_where: str) -> str:
        if self._jinja is not None:
            try:
                return self._jinja.render(**row)
            except jinja2.UndefinedError as err:
                raise TemplateError(f"{row_where}: {self.where}: {err.message}") from err
            except jinja2.TemplateError as err:
                raise TemplateError(f"{row_where}: {self.where}: {err}") from err
        missing = [f for f in self.format_fields if f not in row]
        if missing:
            raise TemplateError(
                f"{row_where}: {self.where}: field {missing[0]!r} is not in the row "
                f"(row fields: {', '.join(sorted(row)) or 'none'})"
            )
        return self.source.format_map({f: _as_text(row[f]) for f in self.format_fields})


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass
class PromptTemplate:
    """A prompt/completion template pair of one task."""

    prompt: _TextTemplate
    completion: _TextTemplate

    def render(self, row: Mapping[str, Any], row_where: str) -> tuple[str, str]:
        return self.prompt.render(row, row_where), self.completion.render(row, row_where)


def compile_templates(specs: Sequence[tuple[str, str]], task: str) -> list[PromptTemplate]:
    """Compile (prompt, completion) source pairs of task `task`; errors name the task and template index."""
    compiled = []
    for index, (prompt, completion) in enumerate(specs):
        where = f"task {task!r} template {index}"
        compiled.append(
            PromptTemplate(
                _TextTemplate(prompt, f"{where} prompt"), _TextTemplate(completion, f"{where} completion")
            )
        )
    return compiled


def render_row(
    templates: Sequence[PromptTemplate], row: Mapping[str, Any], rng: random.Random, row_where: str
) -> tuple[str, str]:
    """Render `row` with one template drawn by `rng` (always drawn, so the stream stays aligned)."""
    if not templates:
        raise TemplateError(f"{row_where}: no templates")
    template = templates[rng.randrange(len(templates))]
    return template.render(row, row_where)

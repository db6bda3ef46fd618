"""`$(VAR)` expansion with the kubelet's semantics (k8s third_party/forked/golang/expansion).

Re-written here because no Python package ships these rules: `$$` escapes to `$`, `$(NAME)` is
replaced when NAME is known and left as written otherwise, an unclosed `$(` is kept verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand every `$(NAME)` of `text` from `variables`, as the kubelet does for env, command, args."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_reference(text[cursor + 1 :])
            if is_var:
                out.append(variables.get(read, f"$({read})"))
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def _read_reference(rest: str) -> tuple[str, bool, int]:
    """What follows a `$`: (text or name, whether it is a variable name, characters consumed)."""
    first = rest[0]
    if first == _OPERATOR:
        return _OPERATOR, False, 1
    if first == _OPENER:
        closer = rest.find(_CLOSER, 1)
        if closer != -1:
            return rest[1:closer], True, closer + 1
        # An incomplete reference keeps its `$(`; the rest of the text is copied as is.
        return _OPERATOR + _OPENER, False, 1
    return _OPERATOR + first, False, 1

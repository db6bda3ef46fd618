"""Runs the chart's Argo CD health check (charts/kubetune/files/argocd-health.lua) on an object, as Argo CD
does: Lua 5.1 (gopher-lua's dialect), the object as the global `obj`, JSON numbers as floats (float64 in
Argo CD), the returned table's `status` and `message`. Needs `lupa` (the dev extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51  # type: ignore[import-untyped]

SCRIPT = Path(__file__).resolve().parents[3] / "charts" / "kubetune" / "files" / "argocd-health.lua"


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({key: _to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(health status, message) of a FineTuneJob or EvalJob as Argo CD would show it."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    runtime.globals().obj = _to_lua(runtime, obj)
    # Argo CD runs the script as a chunk; `return hs` is its result.
    result = runtime.execute(SCRIPT.read_text())
    return str(result["status"]), str(result["message"])

"""The one logging setup (kubetune_operator.api.logs): JSON lines in pods, text in terminals, for the
operator (Kopf's per-object records included), the trainer and the evaluator pods (test_eval_pod_logging)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from kubetune_operator.api.logs import JsonLinesFormatter, PlainFormatter, configure_logging, in_pod


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, "%s done", ("step",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


KOPF_EXTRA = {
    "settings": object(),  # Kopf's settings ride along on every per-object record: never printed
    "k8s_skip": False,
    "k8s_ref": {"kind": "FineTuneJob", "namespace": "team-a", "name": "tune", "uid": "u1"},
}


def test_a_json_line_holds_time_level_logger_message_object_and_extras() -> None:
    line = JsonLinesFormatter().format(_record(step=3, **KOPF_EXTRA))
    payload = json.loads(line)
    assert "\n" not in line
    assert payload.pop("time").endswith("Z")
    assert payload == {
        "level": "info",
        "logger": "kopf.objects",
        "message": "step done",
        "object": "team-a/tune",
        "step": 3,
    }


def test_text_names_the_object_and_the_extras_but_not_kopfs_internals() -> None:
    assert PlainFormatter().format(_record(step=3, **KOPF_EXTRA)) == "INFO [team-a/tune] step done step=3"
    detailed = PlainFormatter(detailed=True).format(_record(**KOPF_EXTRA))
    assert detailed.split(" ", 1)[1] == "INFO kopf.objects [team-a/tune] step done" and detailed[2] == ":"


def test_ranks_above_zero_log_warnings_only_and_verbose_means_debug() -> None:
    configure_logging(json_lines=True, rank=1)
    assert logging.getLogger().level == logging.WARNING
    configure_logging(json_lines=False, verbose=True)
    assert logging.getLogger().level == logging.DEBUG
    assert isinstance(logging.getLogger().handlers[0].formatter, PlainFormatter)


def test_in_pod_follows_the_kubelets_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert not in_pod()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert in_pod()

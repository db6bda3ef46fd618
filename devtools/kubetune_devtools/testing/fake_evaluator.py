"""Fake evaluator for e2e tests: `python -m kubetune_devtools.testing.fake_evaluator --config F`."""

from __future__ import annotations

from typing import Any

from kubetune_devtools.testing.fake_workload import run


def evaluator_result(config: dict[str, Any]) -> dict[str, Any]:
    spec = config["spec"]
    return {
        "results": {"model": {"rougeL": 0.5, "rouge1": 0.55}, "signatures": {"rouge": "fake"}},
        "verdict": "Passed",
        "verdictReasons": [f"scored {spec['model']['uri']}"],
        "reportUri": f"{spec['output']['uri']}report.html",
    }


if __name__ == "__main__":
    run(evaluator_result)

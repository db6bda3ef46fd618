"""Fake trainer for the operator e2e tests: `python -m kubetune_devtools.testing.fake_trainer --config F`."""

from __future__ import annotations

from typing import Any

from kubetune_devtools.testing.fake_workload import run


def trainer_result(config: dict[str, Any]) -> dict[str, Any]:
    return {"output": {"uri": config["spec"]["output"]["uri"], "digest": "sha256:" + "0" * 64}}


if __name__ == "__main__":
    run(trainer_result)

"""Shared behaviour of the fake trainer/evaluator: read the run config, act out a scripted scenario.

The scenario is JSON in the annotation `kubetune.io/fake-workload` of `spec.podTemplate` (it reaches the
pod inside the rendered run config), e.g. `{"seconds": 3, "failRank": 1, "failAttempts": [0],
"exitCode": 3}`. Keys:
- seconds: how long to run (default 2); progress advances every 0.2 s.
- failRank / failAttempts / exitCode / failAfter: that rank exits with exitCode after failAfter seconds
  in those attempts (KUBETUNE_RESTART); failAttempts omitted = every attempt.
- reportReason: report that failure (a `kubetune_operator.api.contract.Reason` value) at once, through
  the contract's writer and exit code, as a real workload would.
- progress: how rank 0 answers /progress: `normal` (default), `drip` (a byte every 0.5 s, for ever) or
  `flood` (1 GiB), as a hostile or broken pod could; the operator must stay responsive.

Results and failures are written through `kubetune_operator.api.contract`, like the real trainer's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from kubetune_operator.api import contract

SCENARIO_ANNOTATION = "kubetune.io/fake-workload"


@dataclass
class Scenario:
    seconds: float = 2.0
    fail_rank: int | None = None
    fail_attempts: list[int] | None = None
    exit_code: int = 1
    fail_after: float = 0.5
    report_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Scenario:
        annotations = ((config.get("spec") or {}).get("podTemplate") or {}).get("annotations") or {}
        raw = json.loads(annotations.get(SCENARIO_ANNOTATION, "{}"))
        return cls(
            seconds=float(raw.get("seconds", 2.0)),
            fail_rank=raw.get("failRank"),
            fail_attempts=raw.get("failAttempts"),
            exit_code=int(raw.get("exitCode", 1)),
            fail_after=float(raw.get("failAfter", 0.5)),
            report_reason=raw.get("reportReason"),
            extra=raw,
        )


def node_rank() -> int:
    # Under accelerate each process has RANK; with the python launcher the pod's node rank is the rank.
    return int(os.environ.get("RANK") or os.environ.get("KUBETUNE_NODE_RANK") or 0)


def identity() -> dict[str, str]:
    """The rendezvous environment the pod saw, for tests that check ranks and the master address."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "POD_IP", "HOSTNAME")
    found = {name: os.environ[name] for name in names if name in os.environ}
    found.update({k: v for k, v in os.environ.items() if k.startswith("KUBETUNE_")})
    return found


class ProgressServer:
    """Rank 0's /progress, the same JSON shape as the real trainer's."""

    def __init__(self, total_steps: int, mode: str = "normal") -> None:
        self.payload: dict[str, Any] = {"step": 0, "totalSteps": total_steps, "percent": 0.0}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if mode in ("drip", "flood"):
                    self._abuse(mode)
                    return
                body = json.dumps(outer.payload).encode()
                self.send_response(200 if self.path == "/progress" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def _abuse(self, mode: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(2**30))
                self.end_headers()
                chunk = b" " if mode == "drip" else b" " * 65536
                try:
                    for _ in range(2**30 // len(chunk)):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if mode == "drip":
                            time.sleep(0.5)
                except OSError:
                    return  # the reader hung up

            def log_message(self, format: str, *args: Any) -> None:
                return

        address = os.environ.get("POD_IP", "127.0.0.1")
        port = int(os.environ.get("KUBETUNE_METRICS_PORT", "9400"))
        self.server = ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run(result_of: Any) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    scenario = Scenario.from_config(config)
    rank = node_rank()
    attempt = int(os.environ.get("KUBETUNE_RESTART", "0"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"fake workload rank={rank} attempt={attempt} identity={identity()}", flush=True)
    if scenario.report_reason:
        contract.write_failure(contract.Reason(scenario.report_reason), "reported by the workload")
        sys.exit(contract.EXIT_FAILED)
    fails_now = scenario.fail_rank == rank and (
        scenario.fail_attempts is None or attempt in scenario.fail_attempts
    )
    steps = max(1, int(scenario.seconds / 0.2))
    server = None
    if rank == 0:
        try:
            server = ProgressServer(steps, str(scenario.extra.get("progress", "normal")))
        except OSError as error:
            # Progress is best effort: a clash on a shared test machine must not fail the workload.
            print(f"cannot serve /progress: {error}", file=sys.stderr, flush=True)
    started = time.monotonic()
    for step in range(1, steps + 1):
        if fails_now and time.monotonic() - started >= scenario.fail_after:
            print(f"rank {rank} failing with exit code {scenario.exit_code}", flush=True)
            sys.exit(scenario.exit_code)
        time.sleep(0.2)
        if server is not None:
            server.payload = {
                "step": step,
                "totalSteps": steps,
                "epoch": step / steps,
                "percent": round(100.0 * step / steps, 1),
                "etaSeconds": int((steps - step) * 0.2),
                "trainLoss": round(2.0 / step, 4),
                "lastCheckpoint": {
                    "uri": f"{config['spec']['output']['uri']}checkpoints/step-{step}",
                    "step": step,
                },
                "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
    contract.write_result({**result_of(config), "identity": identity()})

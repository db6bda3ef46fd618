"""Pod entry point: `python -m kubetune_evaluator --config /etc/kubetune/job.yaml`.

Exit codes: 0 evaluated (whatever the verdict: the verdict is a result, not a failure),
2 bad input (message on stderr and in the termination log), 1 anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.outputs import TERMINATION_LOG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune_evaluator", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=Path("/etc/kubetune/job.yaml"), help="EvalJob manifest"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kubetune_evaluator.entrypoint import evaluate_manifest

    try:
        run = evaluate_manifest(args.config, serve_metrics=True)
    except EvalInputError as error:
        print(f"error: {error}", file=sys.stderr)
        # `InvalidSpec` tells the operator a restart cannot help: it fails the EvalJob at once.
        if TERMINATION_LOG.is_file():  # mounted inside a pod only
            with contextlib.suppress(OSError):
                report = {"reason": "InvalidSpec", "message": str(error)[:3500]}
                TERMINATION_LOG.write_text(json.dumps(report))
        return 2
    logging.getLogger("kubetune.evaluator").info(
        "verdict %s; report %s", run.outcome.verdict, run.uris["report.html"]
    )
    # Give Prometheus a chance to scrape the final scores before the pod exits.
    time.sleep(float(os.environ.get("KUBETUNE_METRICS_LINGER_SECONDS", "0")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

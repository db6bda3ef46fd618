"""`kubetune demo` from start to finish: stack, operator, data, jobs, live progress, results, clean-up."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from kubetune_devtools.demo import assets, cluster, local_node
from kubetune_devtools.demo.plan import (
    BUCKET,
    GATE_SCORE,
    TUNED_TASK,
    DemoPlan,
    DemoSize,
    evaljob_manifest,
    finetunejob_manifest,
)
from kubetune_devtools.demo.progress_view import eval_line, finetune_line, finished
from kubetune_devtools.demo.results_table import (
    DemoGateError,
    ScoreRow,
    check_gate,
    results_table,
    score_rows,
)
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.layout import cache_dir
from kubetune_devtools.devstack.s3 import ensure_bucket, s3_client
from kubetune_devtools.devstack.stack import LocalStack, StackNotUpError, down, load_stack, status, up


class DemoJobError(RuntimeError):
    """A job failed or did not finish in time."""


@dataclass(frozen=True)
class DemoOptions:
    model: assets.BaseModel = "tiny"
    keep: bool = False
    # Under the cache root like everything else the stack writes ($KUBETUNE_CACHE moves it all).
    output_dir: Path = field(default_factory=lambda: cache_dir() / "demo")
    size: DemoSize = field(default_factory=DemoSize)
    timeout_seconds: float = 900
    poll_seconds: float = 3
    namespace: str = "kubetune-demo"
    """Where the jobs run; the operator's release goes to `<namespace>-system` (tests use their own)."""


@dataclass(frozen=True)
class DemoOutcome:
    rows: list[ScoreRow]
    gate: ScoreRow
    verdict: str | None
    report_uri: str
    report_copy: Path
    results_copy: Path
    seconds: float
    finetune_status: dict[str, Any]


def _watch(
    k8s: KubeClients,
    finetune: dict[str, Any],
    evaluation: dict[str, Any],
    console: Console,
    options: DemoOptions,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Refresh phase/step/loss/ETA every few seconds until the EvalJob (or the FineTuneJob) ends."""
    deadline = time.monotonic() + options.timeout_seconds
    started = time.monotonic()

    def view(tuned: dict[str, Any], scored: dict[str, Any]) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_row(f"FineTuneJob/{finetune['metadata']['name']}", finetune_line(tuned))
        table.add_row(f"EvalJob/{evaluation['metadata']['name']}", eval_line(scored))
        table.add_row("elapsed", f"{time.monotonic() - started:.0f}s")
        return table

    tuned: dict[str, Any] = {}
    scored: dict[str, Any] = {}
    with Live(view(tuned, scored), console=console, refresh_per_second=2, transient=False) as live:
        while time.monotonic() < deadline:
            tuned = cluster.job_status(k8s, finetune)
            scored = cluster.job_status(k8s, evaluation)
            live.update(view(tuned, scored))
            if tuned.get("phase") == "Failed" or finished(scored):
                return tuned, scored
            time.sleep(options.poll_seconds)
    raise DemoJobError(
        f"the jobs did not finish in {options.timeout_seconds:.0f}s (FineTuneJob: {finetune_line(tuned)}; "
        f"EvalJob: {eval_line(scored)}); inspect with `kubectl -n {finetune['metadata']['namespace']} "
        "describe ftj,evj`"
    )


def _prepare_inputs(
    stack: LocalStack, plan: DemoPlan, options: DemoOptions, say: Callable[[str], None]
) -> None:
    client = s3_client(stack.s3_endpoint_url, stack.s3_credentials)
    ensure_bucket(client, BUCKET)
    with tempfile.TemporaryDirectory(prefix="kubetune-demo-") as tmp:
        base = assets.build_base_model(options.model, Path(tmp) / "base", options.size.rows)
        files = assets.upload_directory(client, base, plan.model_uri)
        say(f"base model ({options.model}): {files} files -> {plan.model_uri}")
        data = Path(tmp) / "stdlib-docs.jsonl"
        count = assets.write_dataset(data, options.size.rows)
        assets.upload_file(client, data, plan.dataset_uri)
        say(f"dataset: {count} rows of Python standard-library docstrings -> {plan.dataset_uri}")


def _running_stack() -> LocalStack | None:
    """The stack when everything the demo uses runs. Prometheus is not among them: the demo reads status
    and S3 only, so it need not wait for a Prometheus that is still being built or was stopped."""
    needed = [entry for entry in status() if entry.name != "prometheus"]
    if not all(entry.running for entry in needed):
        return None
    try:
        return load_stack()
    except StackNotUpError:
        return None


def run_demo(options: DemoOptions, console: Console) -> DemoOutcome:
    started = time.monotonic()

    def say(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {line}", soft_wrap=True)

    # "Started by the demo" only when the parts it uses were not running: a stack whose Prometheus is
    # stopped is still someone's running stack, and clean-up must not stop it.
    running = _running_stack()
    was_up = running is not None
    stack = running or up(report=lambda line: say(f"[dev up] {line}"))
    plan = DemoPlan(
        run_id=time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2),
        s3_endpoint=stack.s3_endpoint_url,
        namespace=options.namespace,
        system_namespace=f"{options.namespace}-system",
        release=options.namespace,
        size=options.size,
    )
    options.output_dir.mkdir(parents=True, exist_ok=True)
    k8s = KubeClients.from_kubeconfig(stack.kubeconfig)
    try:
        outcome = _run_on_stack(stack=stack, k8s=k8s, plan=plan, options=options, console=console, say=say)
        outcome = DemoOutcome(**{**outcome.__dict__, "seconds": time.monotonic() - started})
    finally:
        if not options.keep:
            _clean_up(stack, k8s, plan, stopped_stack=not was_up, say=say)
        k8s.close()
    if options.keep:
        say(
            f"kept: `export KUBECONFIG={stack.kubeconfig}; kubectl -n {plan.namespace} get ftj,evj`; "
            "`kubetune dev down` stops the stack"
        )
    return outcome


def _run_on_stack(
    *,
    stack: LocalStack,
    k8s: KubeClients,
    plan: DemoPlan,
    options: DemoOptions,
    console: Console,
    say: Callable[[str], None],
) -> DemoOutcome:
    for namespace in (plan.system_namespace, plan.namespace):
        cluster.ensure_namespace(k8s, namespace)
    say(f"operator: {cluster.install_operator(stack, plan)} (ready)")
    _prepare_inputs(stack, plan, options, say)
    cluster.apply_secret(k8s, stack, plan)
    if local_node.ensure_pods_can_write():
        say(f"{local_node.shared_work_dir()}: made writable for the pods (see demo/local_node.py)")
    say(f"secret/{plan.namespace}/demo-s3: S3 credentials for the pods")

    finetune, evaluation = finetunejob_manifest(plan), evaljob_manifest(plan)
    manifests = options.output_dir / "jobs.yaml"
    manifests.write_text(yaml.safe_dump_all([finetune, evaluation], sort_keys=False))
    for manifest in (evaluation, finetune):
        cluster.delete_job(k8s, manifest)
    for manifest in (finetune, evaluation):
        cluster.server_side_apply(k8s, manifest)
    say(
        f"applied: kubectl apply --server-side -f {manifests}"
        "  (FineTuneJob on 2 nodes, EvalJob with a baseline)"
    )

    tuned, scored = _watch(k8s, finetune, evaluation, console, options)
    console.print()  # without a terminal, Live leaves its last frame without a line end
    if tuned.get("phase") == "Failed" or scored.get("phase") != "Succeeded":
        raise DemoJobError(
            f"FineTuneJob: {finetune_line(tuned)}; EvalJob: {eval_line(scored)}; "
            f"see `kubectl -n {plan.namespace} describe ftj,evj` and the pods' logs"
        )

    client = s3_client(stack.s3_endpoint_url, stack.s3_credentials)
    results_copy = assets.download(
        client, plan.eval_uri + "results.json", options.output_dir / "results.json"
    )
    report_uri = str(scored.get("reportUri") or plan.eval_uri + "report.html")
    report_copy = assets.download(client, report_uri, options.output_dir / "report.html")
    results: dict[str, Any] = json.loads(results_copy.read_text())
    rows = score_rows(results)
    console.print(results_table(rows, scored.get("verdict")))
    console.print(f"HTML report: {report_uri}  (local copy: {report_copy})")
    gate = check_gate(rows, TUNED_TASK, GATE_SCORE)
    return DemoOutcome(
        rows=rows,
        gate=gate,
        verdict=scored.get("verdict"),
        report_uri=report_uri,
        report_copy=report_copy,
        results_copy=results_copy,
        seconds=0.0,
        finetune_status=tuned,
    )


def _clean_up(
    stack: LocalStack, k8s: KubeClients, plan: DemoPlan, stopped_stack: bool, say: Callable[[str], None]
) -> None:
    """Remove what the demo created: the release and its namespaces; the stack too when the demo started
    it. The S3 outputs stay (the report's local copy is already on disk)."""
    cluster.uninstall_operator(stack, plan)
    for namespace in (plan.namespace, plan.system_namespace):
        cluster.delete_namespace(k8s, namespace)
    if stopped_stack:
        down(report=lambda line: None)
        say("cleaned up: Helm release, demo namespaces and the local stack the demo started")
    else:
        say("cleaned up: Helm release and demo namespaces (the local stack was already up and keeps running)")


__all__ = ["DemoGateError", "DemoJobError", "DemoOptions", "DemoOutcome", "run_demo"]

"""`kubetune demo` from start to finish: stack, operator, data, jobs, live progress, results, clean-up."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from kubetune_devtools.demo import assets, cluster
from kubetune_devtools.demo.comparison import (
    MethodOutcome,
    comparison_table,
    explain,
    loss_history,
    task_change,
)
from kubetune_devtools.demo.plan import (
    BUCKET,
    MAX_REGRESSION,
    RECIPES,
    BaseModelName,
    DemoPlan,
    DemoRecipe,
    Method,
    evaljob_manifest,
    finetunejob_manifest,
)
from kubetune_devtools.demo.progress_view import eval_line, finetune_line, finished, run_seconds
from kubetune_devtools.demo.report import render_demo_report
from kubetune_devtools.demo.results_table import (
    DemoGateError,
    ScoreRow,
    check_gate,
    results_table,
    score_rows,
)
from kubetune_devtools.demo.stdlib_docs import GENERAL_TASK, TARGET_TASK
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.layout import cache_dir
from kubetune_devtools.devstack.s3 import ensure_bucket, s3_client, upload_directory
from kubetune_devtools.devstack.stack import LocalStack, StackNotUpError, down, load_stack, status, up

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class DemoJobError(RuntimeError):
    """A job failed or did not finish in time."""


@dataclass(frozen=True)
class DemoOptions:
    model: BaseModelName = "smollm2"
    recipe: DemoRecipe | None = None
    """None: the model's recipe (`plan.RECIPES`)."""
    methods: tuple[Method, ...] | None = None
    """Methods run side by side on the same task (`--compare full,lora`); None: the recipe's one."""
    keep: bool = False
    # Under the cache root like everything else the stack writes ($KUBETUNE_CACHE moves it all).
    output_dir: Path = field(default_factory=lambda: cache_dir() / "demo")
    timeout_seconds: float = 1800
    poll_seconds: float = 3
    namespace: str = "kubetune-demo"
    """Where the jobs run; the operator's release goes to `<namespace>-system` (tests use their own)."""

    @property
    def chosen_recipe(self) -> DemoRecipe:
        return self.recipe or RECIPES[self.model]

    @property
    def chosen_methods(self) -> tuple[Method, ...]:
        return self.methods or (self.chosen_recipe.method,)


@dataclass(frozen=True)
class MethodRun:
    """One FineTuneJob and its EvalJob: statuses, scores and the local copies of their outputs."""

    method: Method
    finetune_status: dict[str, Any]
    eval_status: dict[str, Any]
    rows: list[ScoreRow]
    gate: ScoreRow
    outcome: MethodOutcome
    results_copy: Path
    report_uri: str
    report_copy: Path


@dataclass(frozen=True)
class DemoOutcome:
    runs: list[MethodRun]
    demo_report: Path
    demo_report_uri: str
    seconds: float


@dataclass(frozen=True)
class _Jobs:
    method: Method
    finetune: dict[str, Any]
    evaluation: dict[str, Any]


def _watch(
    k8s: KubeClients, jobs: list[_Jobs], console: Console, options: DemoOptions
) -> dict[Method, tuple[dict[str, Any], dict[str, Any]]]:
    """Refresh phase/step/loss/ETA every few seconds until every EvalJob (or a FineTuneJob) ends."""
    deadline = time.monotonic() + options.timeout_seconds
    started = time.monotonic()
    statuses: dict[Method, tuple[dict[str, Any], dict[str, Any]]] = {job.method: ({}, {}) for job in jobs}

    def view() -> Table:
        table = Table.grid(padding=(0, 2))
        for job in jobs:
            tuned, scored = statuses[job.method]
            table.add_row(f"FineTuneJob/{job.finetune['metadata']['name']}", finetune_line(tuned))
            table.add_row(f"EvalJob/{job.evaluation['metadata']['name']}", eval_line(scored))
        table.add_row("elapsed", f"{time.monotonic() - started:.0f}s")
        return table

    with Live(view(), console=console, refresh_per_second=2, transient=False) as live:
        while time.monotonic() < deadline:
            for job in jobs:
                statuses[job.method] = (
                    cluster.job_status(k8s, job.finetune),
                    cluster.job_status(k8s, job.evaluation),
                )
            live.update(view())
            if all(tuned.get("phase") == "Failed" or finished(scored) for tuned, scored in statuses.values()):
                return statuses
            time.sleep(options.poll_seconds)
    lines = "; ".join(
        f"FineTuneJob: {finetune_line(tuned)}, EvalJob: {eval_line(scored)}"
        for tuned, scored in statuses.values()
    )
    raise DemoJobError(
        f"the jobs did not finish in {options.timeout_seconds:.0f}s ({lines}); inspect with "
        f"`kubectl -n {options.namespace} describe ftj,evj`"
    )


def _prepare_inputs(
    stack: LocalStack, plan: DemoPlan, options: DemoOptions, say: Callable[[str], None]
) -> None:
    client = s3_client(stack.s3_endpoint_url, stack.s3_credentials)
    ensure_bucket(client, BUCKET)
    rows = plan.recipe.size.rows
    with tempfile.TemporaryDirectory(prefix="kubetune-demo-") as tmp:
        base = assets.build_base_model(options.model, Path(tmp) / "base", rows)
        files = upload_directory(client, base, plan.model_uri)
        say(f"base model ({options.model}): {files} files -> {plan.model_uri}")
        data = Path(tmp) / "stdlib-docs.jsonl"
        count = assets.write_dataset(data, rows)
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
        recipe=options.chosen_recipe,
        methods=options.chosen_methods,
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
    # The pods run inside the images the chart names, byte for byte what a cluster would run.
    images_started = time.monotonic()
    built = ", ".join(cluster.ensure_images())
    say(f"images: {built} (`make images`, {time.monotonic() - images_started:.0f} s)")
    say(f"operator: {cluster.install_operator(stack, plan)} (ready)")
    _prepare_inputs(stack, plan, options, say)
    cluster.apply_secret(k8s, stack, plan)
    say(f"secret/{plan.namespace}/demo-s3: S3 credentials for the pods")

    jobs = [
        _Jobs(method, finetunejob_manifest(plan, method), evaljob_manifest(plan, method))
        for method in plan.methods
    ]
    manifests = options.output_dir / "jobs.yaml"
    manifests.write_text(
        yaml.safe_dump_all([m for job in jobs for m in (job.finetune, job.evaluation)], sort_keys=False)
    )
    for job in jobs:
        for manifest in (job.evaluation, job.finetune):
            cluster.delete_job(k8s, manifest)
    statuses: dict[Method, tuple[dict[str, Any], dict[str, Any]]] = {}
    # One method after the other: the local node agent runs every pod in one network namespace, so two
    # FineTuneJobs at once would both bind the rendezvous port (29500); on a real cluster they could overlap.
    for job in jobs:
        for manifest in (job.finetune, job.evaluation):
            cluster.server_side_apply(k8s, manifest)
        say(
            f"applied {job.method}: the {job.finetune['kind']} {job.finetune['metadata']['name']} (2 nodes, "
            f"target task `{TARGET_TASK}`) and the EvalJob {job.evaluation['metadata']['name']} (base as "
            f"baseline, `{TARGET_TASK}` and `{GENERAL_TASK}`) from {manifests} (kubectl apply --server-side)"
        )
        statuses.update(_watch(k8s, [job], console, options))
    console.print()  # without a terminal, Live leaves its last frame without a line end
    failed = [
        f"{method}: FineTuneJob {finetune_line(tuned)}, EvalJob {eval_line(scored)}"
        for method, (tuned, scored) in statuses.items()
        if tuned.get("phase") == "Failed" or scored.get("phase") != "Succeeded"
    ]
    if failed:
        raise DemoJobError(
            "; ".join(failed) + f"; see `kubectl -n {plan.namespace} describe ftj,evj` and the pods' logs"
        )

    client = s3_client(stack.s3_endpoint_url, stack.s3_credentials)
    runs = [_collect(client, plan, options, method, statuses[method]) for method in plan.methods]
    if len(runs) == 1:
        console.print(results_table(runs[0].rows, runs[0].eval_status.get("verdict")))
    outcomes = [run.outcome for run in runs]
    console.print(comparison_table(outcomes))
    explanation = explain(outcomes, MAX_REGRESSION)
    for line in explanation:
        console.print(line, soft_wrap=True)
    for run in runs:
        console.print(f"EvalJob report ({run.method}): {run.report_uri}  (local copy: {run.report_copy})")
        tuning, scoring = run_seconds(run.finetune_status), run_seconds(run.eval_status)
        console.print(
            f"{run.method}: FineTuneJob {tuning or 0:.0f}s, EvalJob {scoring or 0:.0f}s (status startTime to "
            "completionTime)"
        )
    demo_report = options.output_dir / "demo-report.html"
    demo_report.write_text(
        render_demo_report(outcomes, explanation, title=f"kubetune demo: fine-tuning {options.model}")
    )
    assets.upload_file(client, demo_report, plan.report_uri)
    console.print(f"HTML report: {demo_report}  ({plan.report_uri})")
    for run in runs:
        # Every method must learn the target task; forgetting is reported (verdict), not a demo failure.
        check_gate(run.rows, TARGET_TASK, plan.recipe.gate_score)
    return DemoOutcome(runs=runs, demo_report=demo_report, demo_report_uri=plan.report_uri, seconds=0.0)


def _collect(
    client: S3Client,
    plan: DemoPlan,
    options: DemoOptions,
    method: Method,
    statuses: tuple[dict[str, Any], dict[str, Any]],
) -> MethodRun:
    """Read one method's results.json, EvalJob report and training history from S3 (local copies)."""
    tuned, scored = statuses
    local = options.output_dir / method
    results_copy = assets.download(client, plan.eval_uri(method) + "results.json", local / "results.json")
    report_uri = str(scored.get("reportUri") or plan.eval_uri(method) + "report.html")
    report_copy = assets.download(client, report_uri, local / "report.html")
    trained = assets.download(client, plan.tuned_uri(method) + "result.json", local / "train-result.json")
    results: dict[str, Any] = json.loads(results_copy.read_text())
    rows = score_rows(results)
    recipe = plan.recipe
    outcome = MethodOutcome(
        method=method,
        target=task_change(results, TARGET_TASK, recipe.gate_score),
        general=task_change(results, GENERAL_TASK, recipe.general_score),
        verdict=scored.get("verdict"),
        verdict_reasons=[str(reason) for reason in results.get("verdictReasons") or []],
        loss_history=loss_history(json.loads(trained.read_text())),
    )
    gate = next(row for row in rows if row.task == TARGET_TASK and row.score == recipe.gate_score)
    return MethodRun(
        method=method,
        finetune_status=tuned,
        eval_status=scored,
        rows=rows,
        gate=gate,
        outcome=outcome,
        results_copy=results_copy,
        report_uri=report_uri,
        report_copy=report_copy,
    )


def _clean_up(
    stack: LocalStack, k8s: KubeClients, plan: DemoPlan, stopped_stack: bool, say: Callable[[str], None]
) -> None:
    """Remove what the demo created: the release and its namespaces; the stack too when the demo started
    it. The S3 outputs stay (the report's local copy is already on disk)."""
    # The jobs first, while the operator still runs to remove their finalizers: after an interrupted or
    # failed run they may still exist, and without the operator their namespace would stay Terminating.
    for method in plan.methods:
        for manifest in (evaljob_manifest(plan, method), finetunejob_manifest(plan, method)):
            try:
                cluster.delete_job(k8s, manifest, timeout=60)
            except cluster.DemoClusterError as error:
                say(f"clean-up: {error}")
    cluster.uninstall_operator(stack, plan)
    for namespace in (plan.namespace, plan.system_namespace):
        cluster.delete_namespace(k8s, namespace)
    if stopped_stack:
        down(report=lambda line: None)
        say("cleaned up: Helm release, demo namespaces and the local stack the demo started")
    else:
        say("cleaned up: Helm release and demo namespaces (the local stack was already up and keeps running)")


__all__ = ["DemoGateError", "DemoJobError", "DemoOptions", "DemoOutcome", "MethodRun", "run_demo"]

"""Run an EvalJob: validate inputs, generate with the model (and baseline), score, decide, publish.

`run_eval` is what both `kubetune eval job.yaml` and the pod entry point
(`python -m kubetune_evaluator --config ...`) call.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries
from kubetune_evaluator.progress import LogProgress, ProgressSink
from kubetune_evaluator.results import overall_scores, score_entry, status_results
from kubetune_evaluator.samples import TaskSamples, build_task_samples, check_metrics_fit_tasks
from kubetune_evaluator.verdict import decide_verdict

if TYPE_CHECKING:
    from kubetune_evaluator.model_loading import LoadedModel
    from kubetune_operator.api import EvalJobSpec
    from kubetune_trainer.storage import StorageOptions

log = logging.getLogger("kubetune.evaluator")


@dataclass
class SystemRun:
    """What one model (the tuned one or the baseline) produced on every task."""

    role: str
    uri: str
    digest: str = ""
    adapter: bool = False
    predictions: dict[str, list[str]] = field(default_factory=dict)
    # Generations cut at the stop sequences, before answer extraction (kept where a task extracts).
    generations: dict[str, list[str]] = field(default_factory=dict)
    prompts: dict[str, list[str]] = field(default_factory=dict)
    choice_loglikelihoods: dict[str, list[list[float]]] = field(default_factory=dict)
    document_loglikelihoods: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, dict[str, MetricOutput]] = field(default_factory=dict)


@dataclass
class EvalOutcome:
    tasks: list[TaskSamples]
    model: SystemRun
    baseline: SystemRun | None
    task_scores: dict[str, dict[str, dict[str, Any]]]
    signatures: dict[str, str]
    verdict: str
    reasons: list[str]
    results: dict[str, Any]  # results.json content
    notes: dict[str, list[str | None]] = field(default_factory=dict)


def storage_of(spec: EvalJobSpec) -> StorageOptions:
    from kubetune_trainer.pipeline import storage_options

    return storage_options(spec.storage)


def model_uri_of(spec: EvalJobSpec) -> str:
    if spec.model.uri is None:
        ref = spec.model.fine_tune_job_ref.name if spec.model.fine_tune_job_ref else "?"
        raise EvalInputError(
            f"spec.model.fineTuneJobRef ({ref}) is resolved by the operator; "
            "for a local run give spec.model.uri"
        )
    return spec.model.uri


def check_model_digest(spec: EvalJobSpec, found: str) -> None:
    """Refuse a model whose files are not the ones recorded (spec.model.digest, from the FineTuneJob)."""
    expected = spec.model.digest
    if expected and found != expected:
        raise EvalInputError(
            f"model {spec.model.uri}: its files have digest {found}, not the recorded {expected} "
            "(changed since the FineTuneJob wrote them); nothing was scored"
        )


def find_split_manifest(spec: EvalJobSpec, storage: StorageOptions) -> dict[str, Any] | None:
    """The FineTuneJob's split manifest stored with the model (`<model.uri>/split/manifest.json`), if any."""
    from kubetune_trainer.split import read_split_manifest, split_manifest_uri
    from kubetune_trainer.storage import exists

    if spec.dataset.split == "all":
        return None
    uri = split_manifest_uri(model_uri_of(spec))
    if not exists(uri, storage):
        return None
    from kubetune_trainer.errors import KubetuneError

    try:
        return read_split_manifest(uri, storage)
    except KubetuneError as error:
        raise EvalInputError(str(error)) from None


def prepare_inputs(spec: EvalJobSpec) -> list[TaskSamples]:
    """Every check that needs no model: data, templates, split, metric/task fit, judge key."""
    storage = storage_of(spec)
    model_uri_of(spec)
    tasks = build_task_samples(spec, find_split_manifest(spec, storage), storage)
    check_metrics_fit_tasks(spec.metrics, tasks)
    if "judge" in spec.metrics and spec.judge is not None:
        from kubetune_evaluator.judge.binding import judge_api_key

        judge_api_key(spec.judge.endpoint, spec.judge.api_key_secret)  # refuses an unbound key up front
    return tasks


def _chat_prompt(tokenizer: Any, messages: Any) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise EvalInputError("dataset: chat rows ('messages') need a tokenizer with a chat template")
    text: str = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return text


def run_system(
    spec: EvalJobSpec, role: str, loaded: LoadedModel, tasks: list[TaskSamples], progress: ProgressSink
) -> SystemRun:
    """Generate (generation tasks) and score choices (multiple-choice tasks) with one model."""
    from kubetune_evaluator.fewshot import shots_label
    from kubetune_evaluator.generation import generate_predictions
    from kubetune_evaluator.metrics.choice_accuracy import score_multiple_choice

    run = SystemRun(role=role, uri=loaded.uri, digest=loaded.digest, adapter=loaded.adapter)
    for task in tasks:
        if task.kind == "generation":
            prompts = [
                s.prompt if s.messages is None else _chat_prompt(loaded.tokenizer, s.messages)
                for s in task.generation
            ]
            progress.stage(f"{role}: generating {task.name}", len(prompts))
            run.prompts[task.name] = prompts
            raw = generate_predictions(
                loaded.model,
                loaded.tokenizer,
                prompts,
                max_new_tokens=task.max_new_tokens,
                temperature=spec.generation.temperature,
                batch_size=spec.generation.batch_size,
                until=task.until,
                on_batch=progress.advance,
            )
            if task.answer is not None and task.answer.regex is not None:
                from kubetune_evaluator.answers import extract_answer

                run.generations[task.name] = raw
                raw = [extract_answer(text, task.answer) for text in raw]
            run.predictions[task.name] = [text.strip() for text in raw]
        elif task.kind == "text":
            from kubetune_evaluator.metrics.perplexity import document_loglikelihoods, score_perplexity

            progress.stage(f"{role}: perplexity {task.name}", len(task.documents))
            doc_loglik = document_loglikelihoods(
                loaded.model,
                loaded.tokenizer,
                task.documents,
                batch_size=spec.generation.batch_size,
                on_document=progress.advance,
            )
            run.document_loglikelihoods[task.name] = doc_loglik
            counted = task.count_texts or task.documents
            run.outputs.setdefault(task.name, {})["perplexity"] = score_perplexity(doc_loglik, counted)
        elif "accuracy" in spec.metrics:
            progress.stage(f"{role}: multiple choice {task.name}", len(task.questions))
            output, loglik = score_multiple_choice(
                loaded.model,
                loaded.tokenizer,
                task.questions,
                spec.generation.batch_size,
                progress.advance,
                shots=shots_label(spec.fewshot),
            )
            run.outputs.setdefault(task.name, {})["accuracy"] = output
            run.choice_loglikelihoods[task.name] = loglik
    return run


def _references(task: TaskSamples) -> list[list[str]]:
    return [[ref.strip() for ref in sample.references] for sample in task.generation]


def score_text_metrics(
    spec: EvalJobSpec, tasks: list[TaskSamples], runs: list[SystemRun], storage: StorageOptions
) -> None:
    """rouge/bleu/exact_match/bertscore/judge for every generation task and system (in place)."""
    from kubetune_evaluator.metrics.registry import REFERENCE_METRICS, score_references

    encoder_dir = None
    if "bertscore" in spec.metrics and spec.bertscore_model is not None:
        from kubetune_evaluator.model_loading import fetch_model_dir

        encoder_dir = fetch_model_dir(spec.bertscore_model.uri, storage)
    for task in (t for t in tasks if t.kind == "generation"):
        references = _references(task)
        for run in runs:
            predictions = run.predictions[task.name]
            outputs = run.outputs.setdefault(task.name, {})
            for metric in spec.metrics:
                if metric == "exact_match" and task.answer is not None:
                    from kubetune_evaluator.answers import lm_eval_exact_match

                    outputs[metric] = lm_eval_exact_match(predictions, references, task.answer)
                elif metric in REFERENCE_METRICS:
                    outputs[metric] = score_references(metric, predictions, references)
                elif metric == "bertscore" and encoder_dir is not None:
                    from kubetune_evaluator.metrics.bertscore_metric import score_bertscore

                    outputs[metric] = score_bertscore(predictions, references, encoder_dir)
        if "judge" in spec.metrics and spec.judge is not None:
            _score_judge(spec, task, runs, references)


def _score_judge(
    spec: EvalJobSpec, task: TaskSamples, runs: list[SystemRun], references: list[list[str]]
) -> None:
    from kubetune_evaluator.judge.binding import judge_api_key
    from kubetune_evaluator.judge.client import JudgeSettings
    from kubetune_evaluator.metrics.judge_metric import score_judge_pairwise, score_judge_single

    assert spec.judge is not None
    settings = JudgeSettings(
        endpoint=spec.judge.endpoint,
        model=spec.judge.model,
        api_key=judge_api_key(spec.judge.endpoint, spec.judge.api_key_secret),
        timeout_s=spec.judge.timeout_seconds,
        max_attempts=spec.judge.max_retries + 1,
        concurrency=spec.judge.concurrency,
        response_format=spec.judge.response_format,
    )
    first_refs = [refs[0] for refs in references]
    prompts = runs[0].prompts[task.name]
    for run in runs:
        run.outputs[task.name]["judge"] = score_judge_single(
            settings, prompts, first_refs, run.predictions[task.name]
        )
    if len(runs) == 2:
        pairwise = score_judge_pairwise(
            settings, prompts, first_refs, runs[0].predictions[task.name], runs[1].predictions[task.name]
        )
        runs[0].outputs[task.name]["judge_pairwise"] = pairwise


def collect_scores(
    tasks: list[TaskSamples], model: SystemRun, baseline: SystemRun | None
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """Per task and score: model/baseline values with bootstrap CIs and the paired delta CI."""
    task_scores: dict[str, dict[str, dict[str, Any]]] = {}
    signatures: dict[str, str] = {}
    for task in tasks:
        entries: dict[str, dict[str, Any]] = {}
        for metric, output in model.outputs.get(task.name, {}).items():
            signatures[metric] = output.signature
            base_output = baseline.outputs.get(task.name, {}).get(metric) if baseline else None
            for name, series in output.scores.items():
                base_series: ScoreSeries | None = base_output.scores.get(name) if base_output else None
                entries[name] = score_entry(series, base_series)
        task_scores[task.name] = entries
    return task_scores, signatures


def _release(loaded: LoadedModel) -> None:
    del loaded.model
    gc.collect()


def run_eval(
    spec: EvalJobSpec,
    progress: ProgressSink | None = None,
    load: Callable[..., LoadedModel] | None = None,
) -> EvalOutcome:
    """Score spec.model (and spec.baseline) on every task; nothing is written (see outputs.publish)."""
    from kubetune_evaluator.model_loading import load_model

    progress = progress or LogProgress()
    load = load or load_model
    storage = storage_of(spec)
    tasks = prepare_inputs(spec)
    baseline_uri = spec.baseline.uri if spec.baseline else None
    loaded = load(model_uri_of(spec), base_uri=baseline_uri, storage=storage)
    check_model_digest(spec, loaded.digest)
    model_run = run_system(spec, "model", loaded, tasks, progress)
    _release(loaded)
    baseline_run = None
    if baseline_uri is not None:
        loaded_base = load(baseline_uri, storage=storage)
        baseline_run = run_system(spec, "baseline", loaded_base, tasks, progress)
        _release(loaded_base)
    runs = [model_run] + ([baseline_run] if baseline_run else [])
    progress.stage("scoring", len(tasks))
    score_text_metrics(spec, tasks, runs, storage)
    task_scores, signatures = collect_scores(tasks, model_run, baseline_run)
    verdict = decide_verdict(task_scores, spec.thresholds)
    overall = overall_scores(task_scores)
    results = {
        "model": {"uri": model_run.uri, "digest": model_run.digest, "adapter": model_run.adapter},
        "baseline": (
            {"uri": baseline_run.uri, "digest": baseline_run.digest, "adapter": baseline_run.adapter}
            if baseline_run
            else None
        ),
        "split": spec.dataset.split,
        "tasks": {
            task.name: {
                "kind": task.kind,
                "source": task.source,
                "samples": len(task),
                "scores": task_scores[task.name],
            }
            for task in tasks
        },
        "summary": status_results(overall, signatures),
        "signatures": signatures,
        "verdict": verdict.verdict,
        "verdictReasons": verdict.reasons,
    }
    progress.advance(len(tasks))
    return EvalOutcome(
        tasks=tasks,
        model=model_run,
        baseline=baseline_run,
        task_scores=task_scores,
        signatures=signatures,
        verdict=verdict.verdict,
        reasons=verdict.reasons,
        results=results,
    )

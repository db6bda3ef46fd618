"""Run an EvalJob: validate inputs, generate with the model (and baseline), score, decide, publish.

`run_eval` is what both `kubetune eval job.yaml` and the pod entry point
(`python -m kubetune_evaluator --config ...`) call.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubetune_evaluator.answers import extract_answer, lm_eval_exact_match
from kubetune_evaluator.chat_prompts import chat_messages, render_chat, uses_chat_template
from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.generation import owned_generations
from kubetune_evaluator.judge.binding import judge_api_key
from kubetune_evaluator.judge.client import JudgeSettings
from kubetune_evaluator.loglikelihood import owned_pair_loglikelihoods, resolve_max_length
from kubetune_evaluator.metrics.bertscore_metric import score_bertscore
from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion, choice_pairs, choice_scores
from kubetune_evaluator.metrics.judge_metric import score_judge_pairwise, score_judge_single
from kubetune_evaluator.metrics.perplexity import document_totals, document_windows, score_perplexity
from kubetune_evaluator.metrics.registry import REFERENCE_METRICS, score_references
from kubetune_evaluator.metrics.series import MetricOutput, ScoreSeries
from kubetune_evaluator.model_loading import LoadedModel, fetch_model_dir, load_model
from kubetune_evaluator.progress import LogProgress, ProgressSink
from kubetune_evaluator.results import overall_scores, score_entry, status_results
from kubetune_evaluator.samples import TaskSamples, build_task_samples, check_metrics_fit_tasks
from kubetune_evaluator.shard import WHOLE, Shard
from kubetune_evaluator.verdict import decide_verdict
from kubetune_operator.data.digest import check_model_digest
from kubetune_operator.data.errors import KubetuneError
from kubetune_operator.data.pipeline import storage_options
from kubetune_operator.data.split import read_split_manifest, split_manifest_uri
from kubetune_operator.data.storage import exists

if TYPE_CHECKING:
    from kubetune_operator.api import EvalJobSpec
    from kubetune_operator.data.storage import StorageOptions

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
    # How this model's prompts of each task were rendered (the signatures' words; '' for plain text as set).
    chat: dict[str, str] = field(default_factory=dict)


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
    return storage_options(spec.storage)


def model_uri_of(spec: EvalJobSpec) -> str:
    if spec.model.uri is None:
        ref = spec.model.fine_tune_job_ref.name if spec.model.fine_tune_job_ref else "?"
        raise EvalInputError(
            f"spec.model.fineTuneJobRef ({ref}) is resolved by the operator; "
            "for a local run give spec.model.uri"
        )
    return spec.model.uri


def find_split_manifest(spec: EvalJobSpec, storage: StorageOptions) -> dict[str, Any] | None:
    """The FineTuneJob's split manifest stored with the model (`<model.uri>/split/manifest.json`), if any."""
    if spec.dataset.split == "all":
        return None
    uri = split_manifest_uri(model_uri_of(spec))
    if not exists(uri, storage):
        return None

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
        judge_api_key(spec.judge.endpoint, spec.judge.api_key_secret)  # refuses an unbound key up front
    return tasks


def _chat_prompt(tokenizer: Any, messages: Any) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise EvalInputError("dataset: chat rows ('messages') need a tokenizer with a chat template")
    text: str = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return text


def generation_prompts(tokenizer: Any, task: TaskSamples, templated: bool) -> list[str]:
    """Each sample's prompt for this model: chat rows and (`templated`: chatTemplate.apply resolved for
    this model) every prompt through the model's chat template, else the plain text."""
    prompts = []
    for sample, dialogue in zip(task.generation, task.dialogues, strict=True):
        if sample.messages is not None:
            prompts.append(_chat_prompt(tokenizer, sample.messages))
        elif templated and task.chat is not None:
            messages = chat_messages(dialogue, multiturn=task.chat.fewshot_as_multiturn)
            prompts.append(render_chat(tokenizer, messages))
        else:
            prompts.append(sample.prompt)
    return prompts


def model_questions(tokenizer: Any, task: TaskSamples, templated: bool) -> list[ChoiceQuestion]:
    """The questions as this model scores them: `templated` (chatTemplate.apply resolved for this model),
    the prompt through its chat template and each choice right after the generation prompt (no space), as
    lm-eval does."""
    if not templated or task.chat is None:
        return task.questions
    multiturn = task.chat.fewshot_as_multiturn
    return [
        dataclasses.replace(
            question,
            prompt=render_chat(tokenizer, chat_messages(dialogue, multiturn=multiturn)),
            delimiter="",
        )
        for question, dialogue in zip(task.questions, task.dialogues, strict=True)
    ]


@dataclass
class SystemRequests:
    """What one model computed on one shard, by request index (all requests for one pod); JSON-able, so
    that rank 0 of a sharded EvalJob can merge the others' (see kubetune_evaluator.shard)."""

    role: str
    uri: str
    digest: str = ""
    adapter: bool = False
    # Generation tasks: the prompt and the generation (cut at the stop sequences) of each sample.
    prompts: dict[str, dict[int, str]] = field(default_factory=dict)
    generations: dict[str, dict[int, str]] = field(default_factory=dict)
    # Choice tasks: one per choice_pairs request; text tasks: one per rolling window.
    loglikelihoods: dict[str, dict[int, float]] = field(default_factory=dict)
    # Text tasks: the document of every window (all windows, whoever computed them).
    window_documents: dict[str, list[int]] = field(default_factory=dict)
    # Choice and generation tasks with a chatTemplate setting: whether this model's prompts went through
    # its chat template (`auto` decides per model, by its tokenizer).
    chat: dict[str, bool] = field(default_factory=dict)


def compute_requests(
    spec: EvalJobSpec,
    role: str,
    loaded: LoadedModel,
    tasks: list[TaskSamples],
    progress: ProgressSink,
    *,
    shard: Shard = WHOLE,
) -> SystemRequests:
    """The model's work on the batches `shard` owns: generations and log-likelihoods, nothing scored yet."""
    run = SystemRequests(role=role, uri=loaded.uri, digest=loaded.digest, adapter=loaded.adapter)
    batch_size = spec.generation.batch_size
    for task in tasks:
        templated = uses_chat_template(task.chat, loaded.tokenizer)
        if task.chat is not None:
            run.chat[task.name] = templated
        if task.kind == "generation":
            prompts = generation_prompts(loaded.tokenizer, task, templated)
            progress.stage(f"{role}: generating {task.name}", len(prompts))
            generations = owned_generations(
                loaded.model,
                loaded.tokenizer,
                prompts,
                max_new_tokens=task.max_new_tokens,
                temperature=spec.generation.temperature,
                batch_size=batch_size,
                until=task.until,
                on_batch=progress.advance,
                shard=shard,
            )
            run.generations[task.name] = generations
            run.prompts[task.name] = {index: prompts[index] for index in generations}
        elif task.kind == "text":
            progress.stage(f"{role}: perplexity {task.name}", len(task.documents))
            limit = resolve_max_length(loaded.model, loaded.tokenizer)
            owners, pairs = document_windows(loaded.tokenizer, task.documents, limit)
            run.window_documents[task.name] = owners
            run.loglikelihoods[task.name] = owned_pair_loglikelihoods(
                loaded.model,
                loaded.tokenizer,
                pairs,
                batch_size=batch_size,
                max_length=limit,
                on_batch=_in_units(progress, len(task.documents), len(pairs)),
                shard=shard,
            )
        elif "accuracy" in spec.metrics:
            progress.stage(f"{role}: multiple choice {task.name}", len(task.questions))
            questions = model_questions(loaded.tokenizer, task, templated)
            if templated and shard.rank == 0:  # samples.jsonl shows the model's own prompts
                run.prompts[task.name] = {i: q.prompt for i, q in enumerate(questions)}
            pairs = choice_pairs(loaded.tokenizer, questions)
            run.loglikelihoods[task.name] = owned_pair_loglikelihoods(
                loaded.model,
                loaded.tokenizer,
                pairs,
                batch_size=batch_size,
                on_batch=_in_units(progress, len(task.questions), len(pairs)),
                shard=shard,
            )
    return run


def _in_units(progress: ProgressSink, units: int, requests: int) -> Callable[[int], None]:
    """Advance `progress` in samples (questions, documents) as batches of requests finish."""
    reported = done = 0

    def on_batch(count: int) -> None:
        nonlocal reported, done
        done += count
        reached = done * units // max(requests, 1)
        if reached > reported:
            progress.advance(reached - reported)
        reported = reached

    return on_batch


def _complete(values: dict[int, Any], count: int, what: str) -> list[Any]:
    missing = [index for index in range(count) if index not in values]
    if missing:
        raise ValueError(f"{what}: {len(missing)} of {count} results missing (first: {missing[0]})")
    return [values[index] for index in range(count)]


def assemble_system(spec: EvalJobSpec, requests: SystemRequests, tasks: list[TaskSamples]) -> SystemRun:
    """Predictions and per-task metric outputs from the merged requests of every shard (no model needed)."""
    run = SystemRun(role=requests.role, uri=requests.uri, digest=requests.digest, adapter=requests.adapter)
    for task in tasks:
        where = f"{requests.role}: task {task.name}"
        templated = requests.chat.get(task.name, False)
        run.chat[task.name] = task.chat_label(templated)
        if task.kind == "generation":
            count = len(task.generation)
            run.prompts[task.name] = _complete(requests.prompts.get(task.name, {}), count, where)
            raw = _complete(requests.generations.get(task.name, {}), count, where)
            if task.answer is not None and task.answer.regex is not None:
                run.generations[task.name] = raw
                raw = [extract_answer(text, task.answer) for text in raw]
            run.predictions[task.name] = [text.strip() for text in raw]
        elif task.kind == "text":
            owners = requests.window_documents.get(task.name, [])
            window_lls = _complete(requests.loglikelihoods.get(task.name, {}), len(owners), where)
            doc_loglik = document_totals(owners, window_lls, len(task.documents))
            run.document_loglikelihoods[task.name] = doc_loglik
            counted = task.count_texts or task.documents
            run.outputs.setdefault(task.name, {})["perplexity"] = score_perplexity(doc_loglik, counted)
        elif "accuracy" in spec.metrics:
            count = sum(len(question.choices) for question in task.questions)
            flat = _complete(requests.loglikelihoods.get(task.name, {}), count, where)
            output, loglik = choice_scores(
                task.questions, flat, shots=task.shots, chat=run.chat[task.name], templated=templated
            )
            if task.name in requests.prompts:
                run.prompts[task.name] = _complete(requests.prompts[task.name], len(task.questions), where)
            run.outputs.setdefault(task.name, {})["accuracy"] = output
            run.choice_loglikelihoods[task.name] = loglik
    return run


def merge_requests(parts: Sequence[SystemRequests]) -> SystemRequests:
    """One system's requests from every shard: each request computed by exactly one of them."""
    first = parts[0]
    merged = SystemRequests(role=first.role, uri=first.uri, digest=first.digest, adapter=first.adapter)
    for part in parts:
        if (part.role, part.uri, part.digest) != (first.role, first.uri, first.digest):
            raise ValueError(
                f"shards scored different models: {first.role} {first.uri} {first.digest} vs "
                f"{part.role} {part.uri} {part.digest}"
            )
        for name, windows in part.window_documents.items():
            if merged.window_documents.setdefault(name, windows) != windows:
                raise ValueError(f"task {name}: shards cut the documents into different windows")
        for name, templated in part.chat.items():
            if merged.chat.setdefault(name, templated) != templated:
                raise ValueError(f"task {name}: shards differ on the chat template")
        for mine, theirs in (
            (merged.prompts, part.prompts),
            (merged.generations, part.generations),
            (merged.loglikelihoods, part.loglikelihoods),
        ):
            for name, values in theirs.items():
                target: dict[int, Any] = mine.setdefault(name, {})
                overlap = target.keys() & values.keys()
                if overlap:
                    raise ValueError(f"task {name}: request {min(overlap)} computed by two shards")
                target.update(values)
    return merged


def _references(task: TaskSamples) -> list[list[str]]:
    return [[ref.strip() for ref in sample.references] for sample in task.generation]


def score_text_metrics(
    spec: EvalJobSpec, tasks: list[TaskSamples], runs: list[SystemRun], storage: StorageOptions
) -> None:
    """rouge/bleu/exact_match/bertscore/judge for every generation task and system (in place)."""
    encoder_dir = None
    if "bertscore" in spec.metrics and spec.bertscore_model is not None:
        encoder_dir = fetch_model_dir(spec.bertscore_model.uri, storage)
        pinned = spec.bertscore_model.digest
        check_model_digest(encoder_dir, pinned, f"spec.bertscoreModel.digest ({spec.bertscore_model.uri})")
    for task in (t for t in tasks if t.kind == "generation"):
        references = _references(task)
        for run in runs:
            predictions = run.predictions[task.name]
            outputs = run.outputs.setdefault(task.name, {})
            for metric in spec.metrics:
                if metric == "exact_match" and task.answer is not None:
                    outputs[metric] = lm_eval_exact_match(predictions, references, task.answer)
                elif metric in REFERENCE_METRICS:
                    outputs[metric] = score_references(metric, predictions, references)
                elif metric == "bertscore" and encoder_dir is not None:
                    outputs[metric] = score_bertscore(predictions, references, encoder_dir)
        if "judge" in spec.metrics and spec.judge is not None:
            _score_judge(spec, task, runs, references)


def _score_judge(
    spec: EvalJobSpec, task: TaskSamples, runs: list[SystemRun], references: list[list[str]]
) -> None:
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
    by_task: dict[str, dict[str, str]] = {}
    for task in tasks:
        entries: dict[str, dict[str, Any]] = {}
        chat = model.chat.get(task.name, "")
        base_chat = baseline.chat.get(task.name, "") if baseline else chat
        for metric, output in model.outputs.get(task.name, {}).items():
            signature = output.signature
            if chat and metric != "accuracy":  # accuracy's own signature says it
                signature += f"|{chat}"
            if base_chat != chat:  # `auto` chose differently for the baseline's tokenizer
                signature += f"|baseline:{base_chat or 'no-chat-template'}"
            by_task.setdefault(metric, {})[task.name] = signature
            base_output = baseline.outputs.get(task.name, {}).get(metric) if baseline else None
            for name, series in output.scores.items():
                base_series: ScoreSeries | None = base_output.scores.get(name) if base_output else None
                entries[name] = score_entry(series, base_series)
        task_scores[task.name] = entries
    return task_scores, {metric: joined_signature(found) for metric, found in by_task.items()}


def joined_signature(by_task: dict[str, str]) -> str:
    """One metric's signature: the same for every task, or each task's (few-shot counts and chat templates
    can differ between tasks), as `task=signature` joined by ' ; '."""
    distinct = set(by_task.values())
    if len(distinct) == 1:
        return distinct.pop()
    return " ; ".join(f"{task}={signature}" for task, signature in by_task.items())


def _release(loaded: LoadedModel) -> None:
    del loaded.model
    gc.collect()


def compute_shard(
    spec: EvalJobSpec,
    shard: Shard = WHOLE,
    progress: ProgressSink | None = None,
    load: Callable[..., LoadedModel] | None = None,
    *,
    planned: Callable[[list[TaskSamples]], None] | None = None,
) -> tuple[list[TaskSamples], list[SystemRequests]]:
    """The samples, and the model's (then the baseline's) requests in the batches `shard` owns; `planned`
    hears the samples as soon as they are read (the size of the work, for live progress)."""
    progress = progress or LogProgress()
    load = load or load_model
    storage = storage_of(spec)
    tasks = prepare_inputs(spec)
    if planned is not None:
        planned(tasks)
    baseline_uri = spec.baseline.uri if spec.baseline else None
    baseline_digest = spec.baseline.digest if spec.baseline else None
    # The loader checks spec.model.digest (for a fineTuneJobRef: the FineTuneJob's recorded digest, passed
    # by the operator) and the baseline's before it reads any weights.
    loaded = load(
        model_uri_of(spec),
        digest=spec.model.digest,
        base_uri=baseline_uri,
        base_digest=baseline_digest,
        storage=storage,
    )
    requests = [compute_requests(spec, "model", loaded, tasks, progress, shard=shard)]
    _release(loaded)
    if baseline_uri is not None:
        loaded_base = load(baseline_uri, digest=baseline_digest, storage=storage, field="spec.baseline")
        requests.append(compute_requests(spec, "baseline", loaded_base, tasks, progress, shard=shard))
        _release(loaded_base)
    return tasks, requests


def run_eval(
    spec: EvalJobSpec,
    progress: ProgressSink | None = None,
    load: Callable[..., LoadedModel] | None = None,
) -> EvalOutcome:
    """Score spec.model (and spec.baseline) on every task; nothing is written (see outputs.publish)."""
    tasks, requests = compute_shard(spec, WHOLE, progress, load)
    return finish_eval(spec, tasks, requests, progress)


def finish_eval(
    spec: EvalJobSpec,
    tasks: list[TaskSamples],
    requests: Sequence[SystemRequests],
    progress: ProgressSink | None = None,
) -> EvalOutcome:
    """Metrics, CIs and verdict from the (merged) requests of the model and the baseline, computed once."""
    progress = progress or LogProgress()
    storage = storage_of(spec)
    model_run = assemble_system(spec, requests[0], tasks)
    baseline_run = assemble_system(spec, requests[1], tasks) if len(requests) > 1 else None
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

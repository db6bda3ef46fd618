"""Per-sample records (samples.jsonl and the report's worst-samples table), pure."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubetune_evaluator.runner import EvalOutcome, SystemRun
    from kubetune_evaluator.samples import TaskSamples


def _per_sample_scores(run: SystemRun, task: str, index: int) -> dict[str, float | None]:
    scores: dict[str, float | None] = {}
    for output in run.outputs.get(task, {}).values():
        for name, series in output.scores.items():
            value = float(series.per_sample[index])
            scores[name] = value if math.isfinite(value) else None
    return scores


def _notes(run: SystemRun, task: str, index: int) -> list[str]:
    notes = []
    for metric, output in run.outputs.get(task, {}).items():
        if index < len(output.notes) and output.notes[index]:
            notes.append(f"{metric}: {output.notes[index]}")
    return notes


def _task_records(outcome: EvalOutcome, task: TaskSamples) -> list[dict[str, Any]]:
    model, baseline = outcome.model, outcome.baseline
    records: list[dict[str, Any]] = []
    for i, row in enumerate(task.rows):
        record: dict[str, Any] = {"task": task.name, "row": row, "kind": task.kind}
        if task.kind == "generation":
            sample = task.generation[i]
            record.update(
                prompt=model.prompts[task.name][i],
                references=list(sample.references),
                prediction=model.predictions[task.name][i],
            )
            if task.name in model.generations:
                record["generation"] = model.generations[task.name][i]
            if baseline is not None:
                record["baselinePrediction"] = baseline.predictions[task.name][i]
        elif task.kind == "text":
            record.update(text=task.documents[i], loglikelihood=model.document_loglikelihoods[task.name][i])
            if baseline is not None:
                record["baselineLoglikelihood"] = baseline.document_loglikelihoods[task.name][i]
        else:
            question = task.questions[i]
            # With chatTemplate.apply the prompt the model scored (through its chat template).
            prompt = model.prompts[task.name][i] if task.name in model.prompts else question.prompt
            record.update(prompt=prompt, choices=list(question.choices), answer=question.answer)
            if task.name in model.choice_loglikelihoods:
                record["loglikelihoods"] = model.choice_loglikelihoods[task.name][i]
            if baseline is not None and task.name in baseline.choice_loglikelihoods:
                record["baselineLoglikelihoods"] = baseline.choice_loglikelihoods[task.name][i]
        record["scores"] = _per_sample_scores(model, task.name, i)
        if baseline is not None:
            record["baselineScores"] = _per_sample_scores(baseline, task.name, i)
        notes = _notes(model, task.name, i)
        if baseline is not None:
            notes += [f"baseline {note}" for note in _notes(baseline, task.name, i)]
        if notes:
            record["notes"] = notes
        records.append(record)
    return records


def sample_records(outcome: EvalOutcome) -> list[dict[str, Any]]:
    return [record for task in outcome.tasks for record in _task_records(outcome, task)]

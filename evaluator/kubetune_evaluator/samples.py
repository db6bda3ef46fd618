"""From an EvalJob spec to the samples of each task: read rows, pick the split, render templates.

Everything here runs before any model is loaded, so bad data (missing fields, empty datasets,
templates that do not render) fails in seconds with a message naming the file, row and field.
Rows, splits and templates come from the trainer's code, so evaluation renders a test row exactly
as training would have.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kubetune_evaluator.benchmarks import benchmark_of, first_n_examples
from kubetune_evaluator.chat_prompts import Dialogue, chat_label
from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.fewshot import (
    FewshotPool,
    Turn,
    completion_turn,
    example_turn,
    fewshot_examples,
    shots_label,
)
from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion
from kubetune_operator.api.evaljob import AnswerSpec
from kubetune_operator.data.datasets import Row, read_rows
from kubetune_operator.data.errors import KubetuneError
from kubetune_operator.data.formats import rows_to_examples
from kubetune_operator.data.split import split_indices
from kubetune_operator.data.templates import compile_templates, render_row

if TYPE_CHECKING:
    from kubetune_operator.api import DatasetSpec, EvalJobSpec, FewshotSpec, SplitSpec
    from kubetune_operator.api.evaljob import ChatTemplateSpec, EvalTaskSpec

DEFAULT_TASK = "default"


@dataclass(frozen=True)
class GenerationSample:
    task: str
    row: int
    prompt: str
    references: tuple[str, ...]
    # Chat rows: the conversation before the final assistant turn; the prompt is rendered later
    # with the model's own chat template.
    messages: tuple[Mapping[str, str], ...] | None = None


@dataclass
class TaskSamples:
    name: str
    kind: Literal["generation", "choice", "text"]
    source: str
    split: str
    generation: list[GenerationSample] = field(default_factory=list)
    questions: list[ChoiceQuestion] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    # Generation tasks: stop sequences, token budget, how the answer is read and compared.
    until: tuple[str, ...] = ()
    max_new_tokens: int = 64
    answer: AnswerSpec | None = None
    # Text tasks (perplexity): each row's text, as given.
    documents: list[str] = field(default_factory=list)
    # The texts whose words and bytes the perplexities count, when not the documents (wikitext counts
    # the page before detokenization, as lm-eval does).
    count_texts: list[str] = field(default_factory=list)
    # Choice and generation tasks: each sample's prompt in parts (description, examples, question), which
    # the runner renders through the model's chat template when `chat` applies to that model.
    dialogues: list[Dialogue] = field(default_factory=list)
    chat: ChatTemplateSpec | None = None  # apply true or auto; None: plain-text prompts
    shots: str = "0-shot"  # the few-shot part of the signature

    def chat_label(self, applied: bool) -> str:
        """How one model's prompts were rendered, for the signatures ('' for plain text as set);
        `applied`: whether they went through its chat template (see chat_prompts.uses_chat_template)."""
        if self.chat is None:
            return ""
        auto = self.chat.apply == "auto"
        return chat_label(self.chat.fewshot_as_multiturn, applied=applied, auto=auto)

    def __len__(self) -> int:
        if self.kind == "text":
            return len(self.documents)
        return len(self.generation) if self.kind == "generation" else len(self.questions)


def mmlu_prompt(question: str, choices: Sequence[str]) -> str:
    """The MMLU prompt of lm-evaluation-harness (question, lettered choices, 'Answer:')."""
    letters = string.ascii_uppercase
    lines = [question.strip(), *(f"{letters[i]}. {choice}" for i, choice in enumerate(choices)), "Answer:"]
    return "\n".join(lines)


def is_choice_row(row: Mapping[str, Any]) -> bool:
    return isinstance(row.get("choices"), list) and "answer" in row


def parse_answer(answer: Any, choices: Sequence[str], where: str) -> int:
    """The correct choice's index from the choice text, a letter (A, B, ...) or an index."""
    if isinstance(answer, bool):
        raise EvalInputError(
            f"{where}: field 'answer' must be an index, a letter or a choice, got {answer!r}"
        )
    if isinstance(answer, int) and 0 <= answer < len(choices):
        return answer
    if isinstance(answer, str):
        if answer in choices:  # choices keep their whitespace (lm-eval scores them as given)
            return list(choices).index(answer)
        text = answer.strip()
        # The choice text wins over a letter: with choices ["c", "d"], answer "c" means the first one.
        if text in choices:
            return list(choices).index(text)
        if len(text) == 1 and text.upper() in string.ascii_uppercase[: len(choices)]:
            return string.ascii_uppercase.index(text.upper())
        if text.isdigit() and int(text) < len(choices):
            return int(text)
    raise EvalInputError(
        f"{where}: field 'answer' {answer!r} is not an index, letter or text of one of {len(choices)} choices"
    )


def choice_question(row: Mapping[str, Any], where: str, prompt: str | None) -> ChoiceQuestion:
    choices = row["choices"]
    if len(choices) < 2 or not all(isinstance(c, str | int | float) and str(c).strip() for c in choices):
        raise EvalInputError(f"{where}: field 'choices' must list at least two non-empty answers")
    texts = tuple(str(c) for c in choices)
    if prompt is None:
        if "question" not in row:
            raise EvalInputError(f"{where}: missing field 'question' (row fields: {', '.join(sorted(row))})")
        prompt = mmlu_prompt(str(row["question"]), texts)
    return ChoiceQuestion(prompt=prompt, choices=texts, answer=parse_answer(row["answer"], texts, where))


def choice_questions(
    rows: Sequence[Mapping[str, Any]], indices: Sequence[int], templates: Sequence[Any], source: str
) -> list[ChoiceQuestion]:
    """The questions of `rows[indices]`; a task template (drawn per row, seeded by it) renders the prompt."""
    questions = []
    for index in indices:
        where = f"{source}: row {index + 1}"
        row = rows[index]
        if not is_choice_row(row):
            raise EvalInputError(f"{where}: missing field 'choices' or 'answer' (multiple-choice task)")
        prompt = render_row(templates, row, random.Random(index), where)[0] if templates else None
        questions.append(choice_question(row, where, prompt))
    return questions


def select_indices(
    n_rows: int, split: str, *, task: str, source: str, split_spec: SplitSpec, manifest: dict[str, Any] | None
) -> list[int]:
    """Row indices to score.

    `all`: every row. With the FineTuneJob's split manifest: the recorded rows of the tasks it trained
    on, and every row of the other tasks (the model never saw them: the forgetting check). Without a
    manifest: the split recomputed from `split_spec` (the same sha256 order the trainer uses).
    """
    if split == "all":
        return list(range(n_rows))
    for entry in (manifest or {}).get("tasks", []):
        if entry.get("name") == task and entry.get("datasetUri") == source:
            if entry.get("numRows") != n_rows:
                raise EvalInputError(
                    f"{source}: has {n_rows} rows but the FineTuneJob's split manifest recorded "
                    f"{entry.get('numRows')}; the dataset changed since training"
                )
            return list(entry["rows"][split])
    if manifest is not None:
        return list(range(n_rows))
    try:
        return split_indices(n_rows, split_spec.validation, split_spec.test, split_spec.seed).part(split)
    except KubetuneError as error:
        raise EvalInputError(f"{source}: {error}") from None


def _task_entries(spec: EvalJobSpec) -> list[tuple[EvalTaskSpec | None, DatasetSpec | None]]:
    return [(task, task.dataset) for task in spec.tasks] if spec.tasks else [(None, None)]


def build_task_samples(
    spec: EvalJobSpec, manifest: dict[str, Any] | None = None, storage: Any = None
) -> list[TaskSamples]:
    """Every task's samples; raises EvalInputError (naming file, row, field) on bad data."""
    cache: dict[str, list[Row]] = {}
    tasks: list[TaskSamples] = []
    for task, task_dataset in _task_entries(spec):
        name = task.name if task is not None else DEFAULT_TASK
        source = task_dataset.uri if task_dataset is not None else spec.dataset.uri
        fmt = task_dataset.format if task_dataset is not None else spec.dataset.format
        split_spec = task_dataset.split if task_dataset is not None else spec.dataset.split_spec
        try:
            if source not in cache:
                cache[source] = read_rows(source, storage)
            rows = cache[source]
            if not rows:
                raise EvalInputError(f"{source}: the dataset is empty (task {name!r})")
            if task is not None and task.benchmark is not None:
                tasks.append(benchmark_task(spec, task, source, rows=rows, cache=cache, storage=storage))
                continue
            indices = select_indices(
                len(rows),
                spec.dataset.split,
                task=name,
                source=source,
                split_spec=split_spec,
                manifest=manifest,
            )
            if spec.generation.max_samples is not None:
                indices = indices[: spec.generation.max_samples]
            if not indices:
                raise EvalInputError(f"{source}: no rows in split {spec.dataset.split!r} (task {name!r})")
            seed = int((manifest or {}).get("seed", split_spec.seed))
            templates = (
                compile_templates([(t.prompt, t.completion) for t in task.templates], name) if task else []
            )
            result = TaskSamples(
                name=name, kind="generation", source=source, split=spec.dataset.split, rows=indices
            )
            if is_choice_row(rows[indices[0]]):
                result.kind = "choice"
                result.questions = choice_questions(rows, indices, templates, source)
            elif "perplexity" in spec.metrics and (
                documents := text_documents(
                    rows, indices, source=source, task=name, fmt=fmt, templates=templates
                )
            ):
                result.kind = "text"
                result.documents = documents
            else:
                result.generation = generation_samples(
                    rows, indices, source=source, task=name, fmt=fmt, templates=templates, seed=seed
                )
                apply_generation_settings(result, spec, task)
            fewshot = effective_fewshot(spec, task)
            if fewshot.num_fewshot and result.kind == "text":
                raise EvalInputError(
                    f"numFewshot: task {name!r} is plain text scored by perplexity; "
                    "few-shot examples do not apply (as in lm-evaluation-harness)"
                )
            if result.kind == "generation" and fewshot.num_fewshot:
                refuse_chat_rows_with_fewshot(result)
            examples: list[list[Turn]] = [[] for _ in range(len(result))]
            if fewshot.num_fewshot:
                pool_source = fewshot.uri or source
                if pool_source not in cache:
                    cache[pool_source] = read_rows(pool_source, storage)
                pool_split = "all" if fewshot.uri else fewshot.split
                pool_indices = select_indices(
                    len(cache[pool_source]),
                    pool_split,
                    task=name,
                    source=pool_source,
                    split_spec=split_spec,
                    manifest=manifest,
                )
                pool_rows = cache[pool_source]
                where = f"{pool_source} ({pool_split} rows, task {name!r})"
                if result.kind == "choice":
                    pool = FewshotPool(
                        rows=[pool_rows[i] for i in pool_indices],
                        questions=choice_questions(pool_rows, pool_indices, templates, pool_source),
                        where=where,
                    )
                else:
                    pool_samples = generation_samples(
                        pool_rows,
                        pool_indices,
                        source=pool_source,
                        task=name,
                        fmt=fmt,
                        templates=templates,
                        seed=seed,
                        fewshot=True,
                    )
                    pool = FewshotPool(
                        rows=[pool_rows[s.row] for s in pool_samples],
                        turns=[completion_turn(s.prompt, s.references[0]) for s in pool_samples],
                        where=where,
                    )
                scored_rows = (
                    [rows[i] for i in indices]
                    if result.kind == "choice"
                    else [rows[sample.row] for sample in result.generation]
                )
                examples = fewshot_examples(
                    scored_rows,
                    pool,
                    n=fewshot.num_fewshot,
                    seed=fewshot.seed,
                    # The pool can hold the sample itself: never its own example (as lm-eval).
                    same_split=pool_source == source
                    and (pool_split == spec.dataset.split or "all" in (pool_split, spec.dataset.split)),
                )
            if result.kind != "text":
                set_prompts(result, ["" for _ in examples], examples, fewshot, effective_chat(spec, task))
        except KubetuneError as error:
            raise EvalInputError(str(error)) from None
        tasks.append(result)
    return tasks


def benchmark_task(
    spec: EvalJobSpec,
    task: EvalTaskSpec,
    source: str,
    *,
    rows: Sequence[Mapping[str, Any]],
    cache: dict[str, Any],
    storage: Any,
) -> TaskSamples:
    """A benchmark task: every row of its file rendered as lm-eval renders it, with its few-shot examples."""
    assert task.benchmark is not None
    bench = benchmark_of(task.benchmark)
    indices = list(range(len(rows)))[: spec.generation.max_samples]
    result = TaskSamples(name=task.name, kind=bench.kind, source=source, split="all", rows=indices)

    def where(uri: str, index: int) -> str:
        return f"{uri}: row {index + 1} ({task.benchmark})"

    if bench.document is not None:
        result.documents = [bench.document(rows[i], where(source, i)) for i in indices]
        result.count_texts = [str(rows[i].get("page", result.documents[n])) for n, i in enumerate(indices)]
        if effective_fewshot(spec, task).num_fewshot:
            raise EvalInputError(f"numFewshot: task {task.name!r} ({bench.name}) is scored by perplexity")
        return result
    if bench.question is not None:
        result.questions = [bench.question(rows[i], where(source, i)) for i in indices]
    elif bench.example is not None:
        for i in indices:
            prompt, reference = bench.example(rows[i], where(source, i))
            result.generation.append(GenerationSample(task.name, i, prompt, (reference.strip(),)))
        settings = task.generation
        result.until = tuple(settings.until if settings and settings.until is not None else bench.until)
        result.max_new_tokens = (
            settings.max_new_tokens if settings and settings.max_new_tokens else bench.max_new_tokens
        )
        result.answer = task.answer or AnswerSpec.model_validate(bench.answer)
    scored = [rows[i] for i in indices]
    fewshot = effective_fewshot(spec, task)
    n = fewshot.num_fewshot
    examples: list[list[Turn]] = [[] for _ in indices]
    if n:
        pool_source = task.fewshot_uri or fewshot.uri or source
        if pool_source not in cache:
            cache[pool_source] = read_rows(pool_source, storage)
        pool_rows = cache[pool_source]
        if bench.question is not None:
            turns = [example_turn(bench.question(r, where(pool_source, i))) for i, r in enumerate(pool_rows)]
        else:
            assert bench.example is not None
            turns = [
                completion_turn(*bench.example(r, where(pool_source, i))) for i, r in enumerate(pool_rows)
            ]
        pool_where = f"{pool_source} (few-shot examples of task {task.name!r})"
        if bench.sampler == "first_n":
            examples = first_n_examples(scored, pool_rows, turns, n=n, group=bench.group, where=pool_where)
        else:
            pool = FewshotPool(rows=pool_rows, turns=turns, where=pool_where)
            examples = fewshot_examples(
                scored, pool, n=n, seed=fewshot.seed,
                same_split=pool_source == source or bench.draws_one_more,
            )  # fmt: skip
    systems = [bench.description(row) for row in scored]
    set_prompts(result, systems, examples, fewshot, effective_chat(spec, task))
    pool_name = "fewshotUri" if task.fewshot_uri else "fewshot.uri" if fewshot.uri else "the scored file"
    result.shots = shots_label(fewshot, pool_name)
    return result


def effective_fewshot(spec: EvalJobSpec, task: EvalTaskSpec | None) -> FewshotSpec:
    """spec.fewshot with the task's own numFewshot and seed, where it sets them."""
    own = task.fewshot if task is not None else None
    if own is None:
        return spec.fewshot
    update = {"num_fewshot": own.num_fewshot, "seed": own.seed}
    return spec.fewshot.model_copy(update={k: v for k, v in update.items() if v is not None})


def effective_chat(spec: EvalJobSpec, task: EvalTaskSpec | None) -> ChatTemplateSpec:
    return task.chat_template if task is not None and task.chat_template is not None else spec.chat_template


def set_prompts(
    result: TaskSamples,
    systems: Sequence[str],
    examples: Sequence[Sequence[Turn]],
    fewshot: FewshotSpec,
    chat: ChatTemplateSpec,
) -> None:
    """Each sample's dialogue (description, examples, its own prompt) and plain-text prompt, in place."""
    bare = [q.prompt for q in result.questions] or [s.prompt for s in result.generation]
    result.dialogues = [
        Dialogue(system, tuple(turns), prompt, fewshot.delimiter)
        for system, turns, prompt in zip(systems, examples, bare, strict=True)
    ]
    result.questions = [
        dataclasses.replace(q, prompt=d.text())
        for d, q in zip(result.dialogues, result.questions, strict=False)
    ]
    result.generation = [
        dataclasses.replace(s, prompt=d.text()) if s.messages is None else s
        for d, s in zip(result.dialogues, result.generation, strict=False)
    ]
    result.shots = shots_label(fewshot)
    if chat.apply is not False:  # chat rows ('messages') get the chat template whatever the setting
        result.chat = chat


def generation_samples(
    rows: Sequence[dict[str, Any]],
    indices: Sequence[int],
    *,
    source: str,
    task: str,
    fmt: str,
    templates: Sequence[Any],
    seed: int,
    fewshot: bool = False,
) -> list[GenerationSample]:
    """The prompt and reference of each row to generate for (chat rows keep their conversation)."""
    samples = []
    examples = rows_to_examples(
        rows, source=source, task=task, fmt=fmt, templates=templates, seed=seed, indices=indices
    )
    for example in examples:
        if example.messages is not None:
            if fewshot:
                raise EvalInputError(
                    f"{source}: row {example.row + 1}: few-shot examples cannot be drawn from chat rows "
                    "('messages'); give prompt/completion rows or task templates"
                )
            history = tuple(example.messages[:-1])
            reference = example.messages[-1]["content"]
            samples.append(GenerationSample(task, example.row, "", (reference,), messages=history))
        elif not example.prompt.strip():
            raise EvalInputError(
                f"{source}: row {example.row + 1}: no prompt to generate from (format 'text'); "
                "give task templates with a prompt"
            )
        else:
            samples.append(GenerationSample(task, example.row, example.prompt, (example.completion,)))
    return samples


def text_documents(
    rows: Sequence[dict[str, Any]],
    indices: Sequence[int],
    *,
    source: str,
    task: str,
    fmt: str,
    templates: Sequence[Any],
) -> list[str] | None:
    """The texts of plain-text rows (format `text`, no templates) for perplexity; None for other rows."""
    if templates:
        return None
    examples = rows_to_examples(rows, source=source, task=task, fmt=fmt, indices=indices)
    if any(example.prompt or example.messages is not None for example in examples):
        return None
    return [example.completion for example in examples]


def apply_generation_settings(result: TaskSamples, spec: EvalJobSpec, task: EvalTaskSpec | None) -> None:
    """The task's stop sequences, token budget and answer rule (its own, else spec.generation's)."""
    settings = task.generation if task is not None else None
    until = settings.until if settings is not None and settings.until is not None else spec.generation.until
    result.until = tuple(until)
    result.max_new_tokens = (
        settings.max_new_tokens
        if settings is not None and settings.max_new_tokens is not None
        else spec.generation.max_new_tokens
    )
    result.answer = task.answer if task is not None else None


def refuse_chat_rows_with_fewshot(result: TaskSamples) -> None:
    if any(sample.messages is not None for sample in result.generation):
        raise EvalInputError(
            f"numFewshot: task {result.name!r} has chat rows ('messages'); few-shot prompting "
            "needs prompt/completion rows or task templates"
        )


def check_metrics_fit_tasks(metrics: Sequence[str], tasks: Sequence[TaskSamples]) -> None:
    """accuracy needs a multiple-choice task, perplexity a plain-text one, text metrics a generation one."""
    kinds = {task.kind for task in tasks}
    if "accuracy" in metrics and "choice" not in kinds:
        raise EvalInputError(
            "spec.metrics: accuracy needs a multiple-choice task (rows with 'question', 'choices', 'answer')"
        )
    if "perplexity" in metrics and "text" not in kinds:
        raise EvalInputError(
            "spec.metrics: perplexity needs a plain-text task (rows with 'text', format text, no templates)"
        )
    choice_tasks = [task.name for task in tasks if task.kind == "choice"]
    if choice_tasks and "accuracy" not in metrics:
        raise EvalInputError(
            f"spec.metrics: task(s) {', '.join(choice_tasks)} are multiple-choice; add accuracy to score them"
        )
    text_metrics = [m for m in metrics if m not in ("accuracy", "perplexity")]
    if text_metrics and "generation" not in kinds:
        raise EvalInputError(
            f"spec.metrics: {', '.join(text_metrics)} need a task with references to generate for; "
            "every task here is multiple-choice or plain text"
        )

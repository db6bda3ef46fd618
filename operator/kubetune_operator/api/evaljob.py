"""EvalJob: score a model (and its baseline) on a test set and publish a verdict."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, WithJsonSchema, model_validator

from kubetune_operator.api.base import SHORT_STRING, ApiModel, Digest, Name, Uri
from kubetune_operator.api.common import (
    MODEL_DIGEST_DESCRIPTION,
    DatasetFormat,
    JobStatus,
    Location,
    ModelSource,
    ObjectReference,
    PodTemplate,
    ResourcesSpec,
    RunPolicy,
    SplitSpec,
    StorageSpec,
    TaskSpec,
    TemplateSpec,
)

DEFAULT_EVALUATOR_IMAGE = "kubetune/evaluator:0.1.0"

Metric = Literal["rouge", "bleu", "exact_match", "accuracy", "bertscore", "judge", "perplexity"]
DEFAULT_METRICS: tuple[Metric, ...] = ("rouge", "bleu", "exact_match")


class EvalModelSource(ApiModel):
    """The model to score: a location, or the output of a FineTuneJob in the same namespace."""

    uri: Uri | None = Field(
        None, description="s3://bucket/prefix/ or a local directory (full model or LoRA adapter)."
    )
    fine_tune_job_ref: ObjectReference | None = Field(
        None, description="Use the output of this FineTuneJob once it has succeeded."
    )
    digest: Digest | None = Field(
        None,
        description=MODEL_DIGEST_DESCRIPTION + " With fineTuneJobRef the operator takes the digest from that "
        "FineTuneJob's status.output.digest; a digest set here must then equal it.",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> EvalModelSource:
        if (self.uri is None) == (self.fine_tune_job_ref is None):
            raise ValueError("spec.model: exactly one of uri or fineTuneJobRef must be set")
        return self


class EvalDatasetSpec(ApiModel):
    """The rows to score."""

    uri: Uri = Field(description="A .jsonl/.json/.csv/.parquet object or a prefix of shards.")
    format: DatasetFormat = Field(
        "auto", description="Row format when no `tasks` are given (as in FineTuneJob)."
    )
    split: Literal["test", "validation", "train", "all"] = Field(
        "test",
        description="Which part of the FineTuneJob's split to score (from its split manifest, or recomputed "
        "with `splitSpec`), or all rows.",
    )
    split_spec: SplitSpec = Field(
        default_factory=SplitSpec,
        description="Split fractions and seed used when there is no split manifest (must match training).",
    )


class GenerationSpec(ApiModel):
    """How predictions are generated."""

    max_new_tokens: int = Field(64, ge=1, le=32768, description="Tokens generated at most per sample.")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0: greedy decoding.")
    batch_size: int = Field(16, ge=1, le=4096, description="Prompts generated together (left-padded).")
    max_samples: int | None = Field(None, ge=1, description="Score at most this many samples per task.")
    until: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=32,
        description="Stop sequences: generation of a sample stops at the first one and the prediction is cut "
        "before it (lm-evaluation-harness's `until`). Tasks may set their own.",
    )


class TaskGenerationSpec(ApiModel):
    """Generation settings of one task; unset fields come from `spec.generation`."""

    until: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        None,
        max_length=32,
        description='Stop sequences of this task (e.g. ["Question:"] for GSM8K), replacing '
        "`spec.generation.until`.",
    )
    max_new_tokens: int | None = Field(
        None, ge=1, le=32768, description="Tokens generated at most per sample."
    )


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regular expression ({error}): {pattern!r}") from None
    return pattern


Regex = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_check_regex)]


class AnswerSpec(ApiModel):
    """How the answer is read from a generation and compared with the reference (lm-evaluation-harness's
    `regex` filter and `exact_match` options)."""

    regex: Regex | None = Field(
        None,
        description="Python regular expression; the prediction becomes the selected match (its first "
        "non-empty group when it has groups), stripped, e.g. GSM8K's strict-match `#### (\\-?[0-9\\.\\,]+)`. "
        "Unset: the whole generation.",
    )
    select: int = Field(
        0,
        ge=-64,
        le=64,
        description="Which match: 0 the first, -1 the last (lm-eval's group_select; GSM8K's flexible-extract "
        "takes -1 of `(-?[$0-9.,]{2,})|(-?[0-9]+)`).",
    )
    fallback: str = Field(
        "[invalid]", max_length=256, description="The prediction when the regex does not match."
    )
    ignore_case: bool = Field(False, description="exact_match compares lower-cased texts.")
    ignore_punctuation: bool = Field(False, description="exact_match drops ASCII punctuation first.")
    regexes_to_ignore: list[Regex] = Field(
        default_factory=list,
        max_length=32,
        description="Removed (re.sub, in order) from prediction and reference before exact_match compares "
        'them, e.g. GSM8K\'s [",", "\\\\$", "(?s).*#### ", "\\\\.$"].',
    )


class TaskFewshotSpec(ApiModel):
    """A task's own few-shot settings; what is not set here comes from `spec.fewshot`."""

    num_fewshot: int | None = Field(
        None, ge=0, le=64, description="Examples per question for this task (else spec.fewshot.numFewshot)."
    )
    seed: int | None = Field(None, ge=0, description="Seed of this task's draw (else spec.fewshot.seed).")


ChatTemplateApply = Annotated[
    StrictBool | Literal["auto"],
    # A structural schema cannot type a field as boolean-or-string (only int-or-string), so the CRD leaves
    # it untyped and lists the three values: the API server still refuses any other.
    WithJsonSchema({"enum": [True, False, "auto"], "x-kubernetes-preserve-unknown-fields": True}),
]


class ChatTemplateSpec(ApiModel):
    """Prompts rendered through the tokenizer's chat template, as lm-evaluation-harness's
    `--apply_chat_template` (with `--fewshot_as_multiturn`) does."""

    apply: ChatTemplateApply = Field(
        False,
        description="true, false or auto. true: render each prompt with the model's chat template "
        "(add_generation_prompt): the description (MMLU's subject line) as the system turn, each few-shot "
        "example as a user and an assistant turn, the question as the last user turn; a multiple-choice "
        "continuation is then the choice without the leading space; the tokenizer must have a chat template. "
        "auto: as true for a model whose tokenizer has a chat template, as false for one without (decided "
        "per model: the baseline by its own tokenizer; the signatures say what each got). false (lm-eval's "
        "default): plain-text prompts. Multiple-choice and generation tasks; chat rows ('messages') always "
        "get the template, plain text (perplexity) never.",
    )
    fewshot_as_multiturn: bool = Field(
        True,
        description="Few-shot examples as alternating user/assistant turns (lm-eval simple_evaluate's "
        "default); false: the examples and the question in one user turn.",
    )


Benchmark = Literal["mmlu", "arc", "hellaswag", "boolq", "gsm8k", "wikitext"]


class EvalTaskSpec(TaskSpec):
    """A task of an EvalJob: the FineTuneJob task syntax plus how to generate and read its answers, or a
    benchmark shipped with kubetune."""

    model_config = TaskSpec.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.benchmark) != (has(self.templates) && size(self.templates) > 0)",
                    "message": "give templates or a benchmark (exactly one)",
                },
                {
                    "rule": "!has(self.fewshotUri) || has(self.benchmark)",
                    "message": "fewshotUri is for benchmark tasks (else spec.fewshot.uri)",
                },
            ]
        }
    }

    templates: list[TemplateSpec] = Field(
        default_factory=list,
        max_length=64,
        description="Templates for this task (as in FineTuneJob); required unless `benchmark` is set.",
    )
    benchmark: Benchmark | None = Field(
        None,
        description="Score `dataset.uri` as this benchmark, with lm-evaluation-harness's prompts "
        "and metrics: mmlu (columns question, subject, choices, answer; lettered choices,"
        " the letter is scored; per-subject description;"
        " few-shot: the first numFewshot rows of the same subject in fewshotUri, e.g. the "
        "dev split; metric accuracy), arc (ARC-Easy/Challenge: question, choices{text,label}, answerKey; "
        "accuracy with accuracyNorm), hellaswag (ctx_a, ctx_b or ctx, activity_label, endings, label; "
        "accuracy, accuracyNorm), boolq (passage, question, answer true/false; no/yes; accuracy), gsm8k "
        "(question, answer; generate until 'Question:', 256 tokens, strict-match regex `#### "
        "(\\-?[0-9\\.\\,]+)`; exact_match) or wikitext (page, detokenized; rolling perplexity). Every row of"
        " the file is scored (`dataset.split` does not apply: the file is the split); `generation` and "
        "`answer` override the benchmark's. No templates.",
    )
    fewshot_uri: Uri | None = Field(
        None,
        description="Benchmark tasks: the file few-shot examples come from (MMLU's dev split, GSM8K's or "
        "ARC's train split), in the same columns; else `spec.fewshot.uri`, else the scored file itself.",
    )

    generation: TaskGenerationSpec | None = Field(
        None, description="Stop sequences and token budget of this task's generations."
    )
    answer: AnswerSpec | None = Field(
        None,
        description="Answer extraction and lm-evaluation-harness's exact_match rule (exact string equality "
        "after the listed removals) instead of the SQuAD normalisation.",
    )
    fewshot: TaskFewshotSpec | None = Field(
        None,
        description="This task's own numFewshot and seed (e.g. 5-shot MMLU next to 0-shot BoolQ in one "
        "EvalJob); the pool and delimiter stay spec.fewshot's.",
    )
    chat_template: ChatTemplateSpec | None = Field(
        None, description="This task's chat-template setting (else spec.chatTemplate)."
    )

    @model_validator(mode="after")
    def _templates_or_benchmark(self) -> EvalTaskSpec:
        if self.benchmark is None and not self.templates:
            raise ValueError(f"task {self.name!r}: templates are required unless benchmark is set")
        if self.benchmark is not None and self.templates:
            raise ValueError(f"task {self.name!r}: a benchmark task takes no templates (the benchmark's)")
        if self.fewshot_uri is not None and self.benchmark is None:
            raise ValueError(f"task {self.name!r}: fewshotUri is for benchmark tasks (else spec.fewshot.uri)")
        return self


class FewshotSpec(ApiModel):
    """Solved examples put before each question (multiple-choice and generation tasks), drawn as
    lm-evaluation-harness draws them."""

    num_fewshot: int = Field(
        0,
        ge=0,
        le=64,
        description="Examples per question (0: zero-shot). A multiple-choice example is its prompt, a space, "
        "its correct choice and `delimiter`; a generation example its rendered prompt and completion and "
        "`delimiter`; the question follows. Not for chat rows ('messages').",
    )
    seed: int = Field(
        1234,
        ge=0,
        description="Seed of the draw: one random.Random(seed) draws `numFewshot` examples for each question "
        "in turn (lm-evaluation-harness's sampler; its default seed is 1234).",
    )
    split: Literal["train", "validation", "test", "all"] = Field(
        "train",
        description="Which rows of each task's dataset the examples come from (its training rows by default, "
        "chosen as for `dataset.split`). When these can include the question being scored (the same split, "
        "or `all`), a question is never its own example.",
    )
    uri: Uri | None = Field(
        None,
        description="Draw the examples of every task from all rows of this dataset instead (e.g. a "
        "benchmark's dev file), in the same row format.",
    )
    delimiter: str = Field(
        "\n\n",
        max_length=64,
        description="Text after each example (lm-evaluation-harness's fewshot_delimiter; the default is a "
        "blank line, two newlines).",
    )


class JudgeSpec(ApiModel):
    """An OpenAI-compatible chat-completions endpoint used as the judge."""

    endpoint: str = Field(
        max_length=SHORT_STRING,
        pattern=r"^https?://[^\s]+$",
        description="Base URL, e.g. http://judge:8000/v1.",
    )
    model: str = Field(max_length=SHORT_STRING, min_length=1, description="Model name sent to the endpoint.")
    api_key_secret: Name | None = Field(
        None,
        description="Secret in the job's namespace whose key OPENAI_API_KEY holds the API key and whose key "
        "endpoint names the one URL it may be sent to (the evaluator refuses any other).",
    )
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at most.")
    timeout_seconds: float = Field(60.0, gt=0, le=3600, description="Per-request timeout.")
    max_retries: int = Field(3, ge=0, le=20, description="Retries (with backoff) per request.")
    response_format: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema",
        description="How the judge is asked for a JSON verdict: json_schema (OpenAI, vLLM), json_object with "
        "a schema (llama-cpp-python's server), or none (free text, parsed as JSON or MT-Bench [[n]]).",
    )


class Thresholds(ApiModel):
    """Minimum scores and the largest regression against the baseline; they decide `status.verdict`."""

    rouge_l: float | None = Field(None, ge=0.0, le=1.0, alias="rougeL", description="Minimum ROUGE-L F1.")
    rouge1: float | None = Field(None, ge=0.0, le=1.0, description="Minimum ROUGE-1 F1.")
    rouge2: float | None = Field(None, ge=0.0, le=1.0, description="Minimum ROUGE-2 F1.")
    rouge_lsum: float | None = Field(None, ge=0.0, le=1.0, description="Minimum ROUGE-Lsum F1.")
    bleu: float | None = Field(None, ge=0.0, le=100.0, description="Minimum corpus BLEU (0-100).")
    exact_match: float | None = Field(None, ge=0.0, le=1.0, description="Minimum exact match.")
    accuracy: float | None = Field(None, ge=0.0, le=1.0, description="Minimum multiple-choice accuracy.")
    bertscore: float | None = Field(None, ge=0.0, le=1.0, description="Minimum BERTScore F1.")
    judge: float | None = Field(None, ge=1.0, le=10.0, description="Minimum mean judge grade (1-10).")
    max_regression: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Largest allowed drop below the baseline on any task and metric (fraction of the "
        "baseline score; for perplexity scores, lower is better, the largest rise); needs `baseline`.",
    )


class EvalJobSpec(ApiModel):
    """What to score, on which rows, with which metrics."""

    model: EvalModelSource = Field(description="The model to score.")
    baseline: ModelSource | None = Field(
        None, description="Scored on the same samples; deltas and the forgetting check use it."
    )
    dataset: EvalDatasetSpec = Field(description="The rows to score.")
    tasks: list[EvalTaskSpec] = Field(
        default_factory=list,
        max_length=64,
        description="Tasks and templates (same syntax as FineTuneJob), with per-task generation and answer "
        "settings.",
    )
    metrics: list[Metric] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        min_length=1,
        max_length=7,
        description="rouge, bleu, exact_match, accuracy (multiple choice), bertscore, judge, perplexity "
        "(rolling log-likelihood of plain-text rows: wordPerplexity, bytePerplexity, bitsPerByte).",
    )
    bertscore_model: ModelSource | None = Field(
        None, description="Encoder used by bertscore (HF layout); required with the bertscore metric."
    )
    generation: GenerationSpec = Field(default_factory=GenerationSpec, description="Generation settings.")
    fewshot: FewshotSpec = Field(
        default_factory=FewshotSpec, description="Few-shot prompting (multiple-choice and generation tasks)."
    )
    chat_template: ChatTemplateSpec = Field(
        default_factory=ChatTemplateSpec,
        description="Whether prompts go through the model's chat template (each task can override it); "
        "the accuracy and exact_match signatures say which.",
    )
    judge: JudgeSpec | None = Field(None, description="The judge endpoint; required with the judge metric.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Pass/fail thresholds.")
    output: Location = Field(description="Where samples.jsonl, results.json and report.html go.")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="S3 endpoint and credentials.")
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec,
        description="Pod resources. `nodes` x `processesPerNode` > 1 shards the evaluation over that many "
        "evaluator processes (each pod runs `processesPerNode`, one GPU each when it has GPUs): each "
        "computes its share of the batches, the first merges them and scores once, with exactly the "
        "numbers of one process (docs/evaluator.md).",
    )
    image: str | None = Field(
        None,
        max_length=SHORT_STRING,
        min_length=1,
        description="Evaluator container image. Unset: the operator's default (its --evaluator-image, chart "
        f"value workloadImages.evaluator), {DEFAULT_EVALUATOR_IMAGE} unless the platform mirrors it.",
    )
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Restarts, deadlines, TTL, suspend.")
    pod_template: PodTemplate = Field(default_factory=PodTemplate, description="Pod overrides.")

    @model_validator(mode="after")
    def _metric_settings_present(self) -> EvalJobSpec:
        if "judge" in self.metrics and self.judge is None:
            raise ValueError("spec.judge: required when metrics contains judge")
        if "bertscore" in self.metrics and self.bertscore_model is None:
            raise ValueError("spec.bertscoreModel: required when metrics contains bertscore")
        if self.thresholds.max_regression is not None and self.baseline is None:
            raise ValueError("spec.thresholds.maxRegression: needs spec.baseline")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("spec.metrics: duplicate metrics")
        return self


class EvalResults(ApiModel):
    """Summary scores (0-1, BLEU 0-100) per metric; per-task detail lies in results.json."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    model: dict[str, float] = Field(default_factory=dict, description="Scores of the model.")
    baseline: dict[str, float] = Field(default_factory=dict, description="Scores of the baseline.")
    delta: dict[str, float] = Field(default_factory=dict, description="model - baseline.")
    signatures: dict[str, str] = Field(
        default_factory=dict, description="Library, version and options per metric."
    )


class EvalProgress(ApiModel):
    """Live progress of the model work, reported by rank 0 of the evaluator (summed over every shard)."""

    samples: int = Field(
        0, ge=0, description="Samples done: generated or scored, by the model and the baseline."
    )
    total_samples: int = Field(
        0,
        ge=0,
        description="Samples planned: each task's samples, once for the model and once for the baseline.",
    )
    percent: float = Field(0.0, ge=0, le=100, description="samples / totalSamples in percent.")
    eta_seconds: int | None = Field(None, ge=0, description="Estimated seconds until the model work ends.")
    stage: str | None = Field(None, max_length=256, description="What rank 0 is doing (system and task).")
    updated_at: str | None = Field(None, description="When rank 0 reported this (RFC 3339).")


class EvalJobStatus(JobStatus):
    """Observed state, written by the operator only."""

    start_time: str | None = Field(None, description="When the evaluator started (RFC 3339).")
    progress: EvalProgress | None = Field(
        None, description="Live progress while Running (rank 0's /progress, all shards); the scores follow."
    )
    model_uri: str | None = Field(None, description="The model actually scored (resolved fineTuneJobRef).")
    model_digest: str | None = Field(
        None, description="The digest the scored model was checked against (spec or the FineTuneJob's)."
    )
    results: EvalResults | None = Field(None, description="Summary scores.")
    verdict: Literal["Passed", "Failed"] | None = Field(None, description="Outcome of the thresholds.")
    verdict_reasons: list[str] = Field(default_factory=list, description="Why the verdict is what it is.")
    report_uri: str | None = Field(None, description="The HTML report.")


class EvalJob(ApiModel):
    """An EvalJob manifest."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["kubetune.io/v1alpha1"] = Field("kubetune.io/v1alpha1", alias="apiVersion")
    kind: Literal["EvalJob"] = "EvalJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: EvalJobSpec
    status: EvalJobStatus | None = None

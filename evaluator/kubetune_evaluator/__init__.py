"""kubetune evaluator: the code EvalJob pods run (and `kubetune eval`, `kubetune score`).

What lives here: the pod entry point (`__main__`, `entrypoint`), the run (`runner`: load models, compute,
score, decide the verdict; `shard`/`shard_exchange` for sharded EvalJobs), the samples (`samples`,
`fewshot`, `benchmarks`, `answers`), the model work (`model_loading`, `generation`, `loglikelihood`),
the metrics (`metrics/`: ROUGE, BLEU, exact match, BERTScore, accuracy, perplexity, the judge's scores;
`judge/`: the LLM-as-a-judge client), and the outputs (`results`, `verdict`, `report`, `outputs`,
`progress`, `live_progress`, `prometheus_metrics`).

What must not: kopf, the controller, the CLI or the development tools (import-linter contracts); metric
code of its own where a reference library exists (rouge-score, sacrebleu, bert-score). It reads manifests
through `kubetune_operator.api` and data through the trainer's torch-free data layer (storage, formats,
templates, split).
"""

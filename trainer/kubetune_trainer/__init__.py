"""kubetune trainer: the code FineTuneJob pods run (and `kubetune train`).

What lives here: the entry point and recipe (recipe.py: Accelerate, completion-only loss, packing), the data
side (storage, datasets, formats, templates, split, mixture, the token cache), the model side (modeling,
sharding and sharded_state for FSDP, checkpoints, train_state, export), the memory preflight and dry run,
and observability (metrics, /progress).

What must not: kopf, the evaluator, the controller or the CLI, the dev tools (import-linter contracts in
pyproject.toml). The operator's API package (kubetune_operator.api) is the only other kubetune code it reads.
"""

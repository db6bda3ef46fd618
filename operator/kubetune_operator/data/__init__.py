"""The torch-free data layer that the trainer, the evaluator and `kubetune train --dry-run` share.

S3 and local storage with retries (storage), dataset readers for JSONL/CSV/Parquet (datasets), the row
formats and FLAN-style templates that turn rows into prompt/completion examples (formats, templates), the
deterministic train/validation/test split and its manifest (split), task mixtures (mixture), the pipeline
that chains them (pipeline), content digests of exported folders (digest) and the user-fixable errors they
raise (errors). Beside the API models and the workload contract (kubetune_operator.api) it is what every
image shares; it imports no torch, no kopf and no Kubernetes client (import-linter contract in
pyproject.toml), so the evaluator never imports the trainer and the CLI stays fast.
"""

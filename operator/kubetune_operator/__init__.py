"""kubetune's operator package: the API shared by every component, the Kopf operator, and the CLI.

What lives here:
- `api/`: the kubetune.io/v1alpha1 models (the single source of the CRDs and docs/api.md), manifest
  parsing, the workload contract pods report through, the memory estimator, logging and time helpers:
  everything operator, trainer and evaluator share (no kopf, Kubernetes client or torch).
- `controller/`: the Kopf operator (builders, policies, reconcile, handlers).
- `cli/`: the `kubetune` command (`crds`, `operator`, `train`, `eval`, `score`).

What must not: torch or any ML library (the operator image has none; the trainer and evaluator are
imported only inside `kubetune train|eval|score`), and the development tools (devtools/ never ships).
Importing this package imports neither kopf nor torch. import-linter contracts in pyproject.toml
enforce these layers (docs/development.md draws them).
"""

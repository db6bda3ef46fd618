"""The Kopf operator for FineTuneJob and EvalJob (`kubetune operator`), shipped in the operator image.

What lives here, by layer:
- pure (no kopf, no Kubernetes client, no `kube`; dicts or models in and out; unit-tested without a
  cluster): `names`, `reasons`, `settings`, `builders` (spec -> child objects), `observe` and `failures`
  (pods -> attempt state), `conditions` and `status` (phase, conditions, Events), `progress` (rank 0's
  report -> status), `policies/` (one rule each);
- `kube`: the only module that talks to the API server;
- `attempts` (the shared attempt lifecycle) and `reconcile` (one reconcile for both kinds), with each
  kind's plan in `reconcile_finetunejob` / `reconcile_evaljob`: they orchestrate the two above;
- `handlers`: the Kopf wiring (registry, memo, locks, Events, metrics) and `metrics`: /metrics.

What must not live here: API models (kubetune_operator.api, which the pods import too), anything the
trainer or evaluator run, development tools or test stand-ins (devtools/), and settings read from the
environment (the CLI builds them once and passes them through Kopf's memo).
"""

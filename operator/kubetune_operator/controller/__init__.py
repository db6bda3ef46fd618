"""The Kopf operator: pure builders and status derivation, policies, a thin API layer, handlers.

Layering (kept by convention, see docs/operator.md): `builders`, `observe`, `status`, `conditions`,
`failures` and `policies` are pure (dicts in, dicts out; unit-tested without a cluster); `kube` is the
only module that talks to the API server; `reconcile_*` orchestrate both; `handlers` wires Kopf.
"""

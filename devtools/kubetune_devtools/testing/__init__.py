"""Test workloads for the operator's end-to-end tests (stand-ins for the trainer and the evaluator).

Not used in production: the operator runs them only when started with
`--trainer-module kubetune_devtools.testing.fake_trainer` (or the evaluator equivalent).
"""

"""Test support for the operator's end-to-end tests.

What lives here: `operator_harness` (an operator process, manifests, `Objects`, `wait_until`, `free_port`),
the fake workloads (`fake_trainer`, `fake_evaluator` over `fake_workload`), stand-ins for the trainer
and the evaluator that finish in seconds and report through the same contract code
(`kubetune_operator.api.contract`) as the real ones, and other helpers tests share.

What must not: anything production runs: the operator runs the fakes only when started with
`--trainer-module kubetune_devtools.testing.fake_trainer` (or the evaluator equivalent).
"""

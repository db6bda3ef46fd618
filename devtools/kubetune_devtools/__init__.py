"""kubetune's development tools: everything that runs only from a checkout, never in an image or the wheel.

What lives here:
- `devstack/`: the local stack (`kubetune dev up|down|env|status`): a real kube-apiserver, controller-manager
  and scheduler built from the pins under hack/tools/, etcd, MinIO, Prometheus, and `devstack/node_agent/`,
  the kubelet stand-in that runs pods as local processes.
- `demo/` and `cli/demo.py`: `kubetune demo` (`make demo`).
- `testing/`: the operator test harness and the fake workloads (which speak the same contract code,
  `kubetune_operator.api.contract`, as the real trainer and evaluator).
- `tiny_models.py`: tiny random Llama models and tokenizers, built on the spot (tests, benchmarks, the demo).
- `generation.py`: greedy generation for quick checks of an exported model (tests, the demo).

What must not: anything the operator, trainer or evaluator need at run time. Shipped code never imports this
package (an import-linter contract in pyproject.toml enforces it); the CLI finds `kubetune dev` and
`kubetune demo` through the `kubetune.cli` entry-point group.
"""

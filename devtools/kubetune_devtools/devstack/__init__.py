"""The local development stack: a real Kubernetes control plane, MinIO S3 and Prometheus on loopback.

`kubetune dev up|down|env|status` and the e2e test fixtures both drive `kubetune_devtools.devstack.stack`.

What lives here: `stack` (up/down/status, idempotent), `processes` (start, pid files, stop), `commands`
(each component's command line), `binaries` (the pinned builds), `layout` (every path and port),
`pki`/`kubeconfig` (certificates and credentials), `cluster_bootstrap` (CRDs, RBAC), `probes`, `s3`,
`prometheus_config`, `kube_clients`, and `node_agent/`, the kubelet stand-in (its own docstring).
What must not: anything the shipped packages import, and fakes of what the stack runs for real (the
control plane, S3 and Prometheus are the real programs; only the kubelet is stood in for).
"""

"""A local node agent: the one stand-in of the local stack, in place of the kubelet.

It registers Node objects, heartbeats, and runs the containers of the pods bound to its nodes as local
processes (no images are pulled: pods run with the project's own Python environment). See
docs/node-agent.md for what it does not emulate. What lives where:

- The loop and its state: `agent` (NodeAgent: start-up, the one-thread loop, shutdown), `state`
  (AgentState, shared by the modules below; posting pod Events), `__main__` (flags), `config`.
- Node lifecycle: `node_lifecycle` (register, delete stale, heartbeat) over `nodes` (pure builders).
- Pods: `pod_tracking` (informer events -> pods run here), `pod_lifecycle` (one pod's turn: stop,
  reap, restart back-off), `container_start` (init then main containers), `status_publisher`
  (patch status) over `status` (pure status builder) and `pod_runtime` (per-pod state).
- Sandbox: `sandbox` (pod IP, directory, HOME, volumes, a container's mounts and memory cgroup) over
  `volumes`, `pod_files`, `env`, `expansion`, `memory_limits`, `process` and `launcher` (the process
  that enters the mount namespace and execs the container), `python_access`, `orphans`.
- DNS: `dns` (hosts files of peers) over `hosts` and `ipam` (pod IPs).
- Logs: `log_endpoint` (finds a container's log) served by `kubelet_server` (`kubectl logs`), `logs`
  (log options). Also `kube` (the API client and pod informer), `events`, `version`.

Pure logic stays in modules that do no I/O (builders, parsers), tested without a cluster; only the
modules above the pure ones call the API or touch processes and files. Shipped code never imports this.
"""

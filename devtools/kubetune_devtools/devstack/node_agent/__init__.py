"""A local node agent: the one stand-in of the local stack, in place of the kubelet.

It registers Node objects, heartbeats, and runs the containers of the pods bound to its nodes as local
processes (no images are pulled: pods run with the project's own Python environment). Pure logic
(env resolution, `$(VAR)` expansion, volumes, status, hosts files, IP allocation) lives in small
modules of its own; `agent` is the thin I/O loop. See docs/node-agent.md for what it does not emulate.
"""

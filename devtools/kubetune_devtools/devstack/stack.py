"""Start, stop and describe the local stack; the typed `LocalStack` is what the test fixtures return."""

from __future__ import annotations

import datetime
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from kubetune_devtools.devstack import commands
from kubetune_devtools.devstack.binaries import REPO_ROOT, ensure_binaries, link_client_tools
from kubetune_devtools.devstack.cluster_bootstrap import bootstrap_cluster
from kubetune_devtools.devstack.kubeconfig import render_kubeconfig, write_kubeconfig
from kubetune_devtools.devstack.layout import Ports, StackLayout, default_state_dir
from kubetune_devtools.devstack.pki import CA_NAME, ETCD_CA_NAME, ensure_pki
from kubetune_devtools.devstack.probes import client_ssl_context, http_ok, wait_for
from kubetune_devtools.devstack.processes import running_process, start_process, stop_process, tree_rss_bytes
from kubetune_devtools.devstack.prometheus_config import render_prometheus_config, write_prometheus_config
from kubetune_devtools.devstack.s3 import S3Credentials, ensure_s3_credentials

NODE_AGENT_MODULE = "kubetune_devtools.devstack.node_agent"
NODE_COUNT = 2
NODE_HEARTBEAT_MAX_AGE_SECONDS = 60
READY_TIMEOUT_SECONDS = 90.0
# Start order; `down` stops in reverse so the node agent can still reach the API server to clean up.
COMPONENT_ORDER = (
    "etcd",
    "kube-apiserver",
    "minio",
    "prometheus",
    "kube-controller-manager",
    "kube-scheduler",
    "node-agent",
)

Report = Callable[[str], None]


@dataclass(frozen=True)
class LocalStack:
    """Connection details of a running local stack."""

    state_dir: Path
    kubeconfig: Path
    api_server_url: str
    ca_file: Path
    s3_endpoint_url: str
    s3_access_key_id: str
    s3_secret_access_key: str
    s3_region: str
    prometheus_url: str

    @property
    def s3_credentials(self) -> S3Credentials:
        return S3Credentials(self.s3_access_key_id, self.s3_secret_access_key, self.s3_region)

    @property
    def tools_dir(self) -> Path:
        """The project's own kubectl, helm and promtool (symlinks into the pinned builds)."""
        return self.state_dir / "bin"

    def env(self) -> dict[str, str]:
        """The standard variable names kubectl, boto3/AWS CLI and our own code read; PATH puts the stack's
        own kubectl (same release as the API server), helm and promtool first, as kind users expect."""
        return {
            "PATH": os.pathsep.join([str(self.tools_dir), os.environ.get("PATH", "")]),
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_ENDPOINT_URL": self.s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": self.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_access_key,
            "AWS_DEFAULT_REGION": self.s3_region,
            "PROMETHEUS_URL": self.prometheus_url,
        }

    def to_json(self) -> str:
        return json.dumps({key: str(value) for key, value in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> LocalStack:
        data = json.loads(text)
        for key in ("state_dir", "kubeconfig", "ca_file"):
            data[key] = Path(data[key])
        return cls(**data)


class StackNotUpError(RuntimeError):
    """`dev env`/`status` on a state directory where `dev up` never ran."""


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    endpoint: str
    ready: Callable[[], bool]
    env: dict[str, str] | None = None


def describe_stack(layout: StackLayout, ports: Ports, credentials: S3Credentials) -> LocalStack:
    return LocalStack(
        state_dir=layout.state_dir,
        kubeconfig=layout.admin_kubeconfig,
        api_server_url=commands.apiserver_url(ports),
        ca_file=layout.cert(CA_NAME),
        s3_endpoint_url=f"http://{commands.LOOPBACK}:{ports.minio}",
        s3_access_key_id=credentials.access_key_id,
        s3_secret_access_key=credentials.secret_access_key,
        s3_region=credentials.region,
        prometheus_url=f"http://{commands.LOOPBACK}:{ports.prometheus}",
    )


def load_stack(state_dir: Path | None = None) -> LocalStack:
    layout = StackLayout(state_dir or default_state_dir())
    if not layout.stack_file.exists():
        raise StackNotUpError(f"no local stack in {layout.state_dir}: run `kubetune dev up` first")
    return LocalStack.from_json(layout.stack_file.read_text())


@contextmanager
def _locked(layout: StackLayout) -> Iterator[None]:
    """Serialise `up`/`down` between processes, e.g. two pytest sessions sharing one stack."""
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def node_agent_available() -> bool:
    return importlib.util.find_spec(NODE_AGENT_MODULE) is not None


def _write_client_configs(layout: StackLayout, ports: Ports) -> None:
    server = commands.apiserver_url(ports)
    ca = layout.cert(CA_NAME)
    write_kubeconfig(
        layout.admin_kubeconfig,
        render_kubeconfig(server, ca, layout.cert("admin"), layout.key("admin"), "kubetune-admin"),
    )
    for user in ("controller-manager", "scheduler"):
        config = render_kubeconfig(server, ca, layout.cert(user), layout.key(user), user)
        write_kubeconfig(layout.kubeconfig_for(user), config)
    prometheus = render_prometheus_config(
        server,
        ca,
        layout.cert("prometheus"),
        layout.key("prometheus"),
        f"{commands.LOOPBACK}:{ports.prometheus}",
    )
    write_prometheus_config(layout.prometheus_config, prometheus)


def _plan(
    layout: StackLayout, ports: Ports, binaries: commands.Binaries, credentials: S3Credentials
) -> dict[str, Component]:
    loopback = commands.LOOPBACK
    api = commands.apiserver_url(ports)
    admin_tls = client_ssl_context(layout.cert(CA_NAME), layout.cert("admin"), layout.key("admin"))
    etcd_tls = client_ssl_context(
        layout.cert(ETCD_CA_NAME),
        layout.cert("etcd-healthcheck-client"),
        layout.key("etcd-healthcheck-client"),
    )
    # controller-manager and scheduler serve /healthz with a self-signed certificate of their own.
    any_tls = client_ssl_context(None)
    plan = [
        Component(
            "etcd",
            commands.etcd_command(binaries.etcd, layout, ports),
            commands.etcd_url(ports),
            lambda: http_ok(f"{commands.etcd_url(ports)}/health", etcd_tls),
        ),
        Component(
            "kube-apiserver",
            commands.apiserver_command(binaries.kube_apiserver, layout, ports),
            api,
            lambda: http_ok(f"{api}/readyz", admin_tls),
        ),
        Component(
            "minio",
            commands.minio_command(binaries.minio, layout, ports),
            f"http://{loopback}:{ports.minio} (console http://{loopback}:{ports.minio_console})",
            lambda: http_ok(f"http://{loopback}:{ports.minio}/minio/health/ready"),
            env={
                "MINIO_ROOT_USER": credentials.access_key_id,
                "MINIO_ROOT_PASSWORD": credentials.secret_access_key,
                "MINIO_SITE_REGION": credentials.region,
                # No phoning home from a test machine.
                "MINIO_UPDATE": "off",
                "MINIO_BROWSER": "on",
            },
        ),
        Component(
            "prometheus",
            commands.prometheus_command(binaries.prometheus, layout, ports),
            f"http://{loopback}:{ports.prometheus}",
            lambda: http_ok(f"http://{loopback}:{ports.prometheus}/-/ready"),
        ),
        Component(
            "kube-controller-manager",
            commands.controller_manager_command(binaries.kube_controller_manager, layout, ports),
            f"https://{loopback}:{ports.controller_manager}",
            lambda: http_ok(f"https://{loopback}:{ports.controller_manager}/healthz", any_tls),
        ),
        Component(
            "kube-scheduler",
            commands.scheduler_command(binaries.kube_scheduler, layout, ports),
            f"https://{loopback}:{ports.scheduler}",
            lambda: http_ok(f"https://{loopback}:{ports.scheduler}/healthz", any_tls),
        ),
    ]
    if node_agent_available():
        plan.append(
            Component(
                "node-agent",
                commands.node_agent_command(Path(sys.executable), layout),
                f"{NODE_COUNT} nodes kt-node-*",
                lambda: _nodes_ready(layout.admin_kubeconfig),
            )
        )
    return {component.name: component for component in plan}


def _nodes_ready(kubeconfig: Path) -> bool:
    """At least NODE_COUNT agent Nodes Ready *and* heartbeating: with the node-lifecycle controller off,
    a Node of a stopped agent would otherwise stay Ready forever."""
    # deferred: the Kubernetes client costs ~0.7 s that `kubetune dev status|env|down` skip
    from kubetune_devtools.devstack.kube_clients import kube_clients  # noqa: PLC0415

    with kube_clients(kubeconfig) as clients:
        nodes = clients.core.list_node().items
    fresh_after = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        seconds=NODE_HEARTBEAT_MAX_AGE_SECONDS
    )
    ready = [
        node
        for node in nodes
        if node.metadata is not None
        and (node.metadata.name or "").startswith("kt-node")
        and node.status is not None
        and any(
            c.type == "Ready"
            and c.status == "True"
            and c.last_heartbeat_time is not None
            and c.last_heartbeat_time > fresh_after
            for c in (node.status.conditions or [])
        )
    ]
    return len(ready) >= NODE_COUNT


def _start(component: Component, layout: StackLayout, report: Report) -> None:
    process = running_process(layout.pid_file(component.name))
    if process is not None:
        report(f"{component.name}: already running (pid {process.pid}) at {component.endpoint}")
        return
    pid = start_process(
        component.argv, layout.log(component.name), layout.pid_file(component.name), component.env
    )
    report(f"{component.name}: started (pid {pid}) at {component.endpoint}, log {layout.log(component.name)}")


def _await_ready(
    components: list[Component], layout: StackLayout, timeout: float, report: Report, started_at: float
) -> None:
    for component in components:

        def ready(component: Component = component) -> bool:
            if running_process(layout.pid_file(component.name)) is None:
                tail = _log_tail(layout.log(component.name))
                raise RuntimeError(f"{component.name} exited; last log lines:\n{tail}")
            return component.ready()

        try:
            wait_for(ready, timeout, f"{component.name} to be ready at {component.endpoint}")
            report(f"{component.name}: ready (+{time.monotonic() - started_at:.1f} s)")
        except AssertionError as error:
            raise RuntimeError(
                f"{error}\nlast log lines of {component.name}:\n{_log_tail(layout.log(component.name))}"
            ) from None


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def up(
    state_dir: Path | None = None,
    crds_dir: Path | None = REPO_ROOT / "crds",
    report: Report = print,
    ports: Ports | None = None,
) -> LocalStack:
    """Build what is missing, start what is not running, wait until everything is ready (idempotent)."""
    layout = StackLayout(state_dir or default_state_dir())
    ports = ports or Ports()
    started_at = time.monotonic()
    with _locked(layout):
        layout.make_dirs()
        binaries = ensure_binaries()
        link_client_tools(layout.state_dir / "bin")
        created = ensure_pki(layout)
        if created:
            report(f"pki: created {', '.join(created)} in {layout.pki_dir}")
        credentials = ensure_s3_credentials(layout.s3_credentials_file)
        _write_client_configs(layout, ports)
        plan = _plan(layout, ports, binaries, credentials)

        _start(plan["etcd"], layout, report)
        _await_ready([plan["etcd"]], layout, READY_TIMEOUT_SECONDS, report, started_at)
        for name in ("kube-apiserver", "minio", "prometheus"):
            _start(plan[name], layout, report)
        _await_ready([plan["kube-apiserver"]], layout, READY_TIMEOUT_SECONDS, report, started_at)
        for name in ("kube-controller-manager", "kube-scheduler", "node-agent"):
            if name in plan:
                _start(plan[name], layout, report)
        if "node-agent" not in plan:
            report(
                f"node-agent: not available ({NODE_AGENT_MODULE} is not installed); pods will stay Pending"
            )
        applied = bootstrap_cluster(layout.admin_kubeconfig, crds_dir)
        report(f"applied (server-side): {', '.join(applied)}")
        rest = [plan[name] for name in COMPONENT_ORDER[2:] if name in plan]
        _await_ready(rest, layout, READY_TIMEOUT_SECONDS, report, started_at)

        stack = describe_stack(layout, ports, credentials)
        layout.stack_file.write_text(stack.to_json())
    report(f'ready in {time.monotonic() - started_at:.1f} s; `eval "$(kubetune dev env)"` to use it')
    return stack


def down(
    state_dir: Path | None = None,
    components: list[str] | None = None,
    purge: bool = False,
    report: Report = print,
) -> None:
    """Stop the components `up` started (all, or the named ones); `purge` also deletes all state."""
    layout = StackLayout(state_dir or default_state_dir())
    unknown = sorted(set(components or ()) - set(COMPONENT_ORDER))
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(COMPONENT_ORDER)}")
    with _locked(layout):
        for name in reversed(COMPONENT_ORDER):
            if components and name not in components:
                continue
            if stop_process(layout.pid_file(name)):
                report(f"{name}: stopped")
        if purge and not components:
            shutil.rmtree(layout.state_dir, ignore_errors=True)
            report(f"removed {layout.state_dir}")


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    rss_bytes: int

    @property
    def running(self) -> bool:
        return self.pid is not None


def status(state_dir: Path | None = None) -> list[ComponentStatus]:
    """Which components run and their resident memory (the node agent's includes its pods)."""
    layout = StackLayout(state_dir or default_state_dir())
    result = []
    for name in COMPONENT_ORDER:
        process = running_process(layout.pid_file(name))
        if process is None:
            result.append(ComponentStatus(name, None, 0))
        else:
            result.append(ComponentStatus(name, process.pid, tree_rss_bytes(process)))
    return result


def is_up(state_dir: Path | None = None) -> bool:
    """True when every component that `up` would start is running (no readiness probe: fast)."""
    states = {entry.name: entry for entry in status(state_dir)}
    expected = [name for name in COMPONENT_ORDER if name != "node-agent" or node_agent_available()]
    return all(states[name].running for name in expected)

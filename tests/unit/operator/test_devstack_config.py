"""Pure rendering: component command lines, kubeconfigs and the Prometheus configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from kubetune_devtools.devstack import commands
from kubetune_devtools.devstack.kubeconfig import render_kubeconfig, write_kubeconfig
from kubetune_devtools.devstack.layout import Ports, StackLayout
from kubetune_devtools.devstack.pki import ensure_pki
from kubetune_devtools.devstack.prometheus_config import render_prometheus_config

BINARY = Path("/opt/bin/tool")


def flags(argv: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


def test_apiserver_runs_like_a_real_cluster() -> None:
    layout, ports = StackLayout(Path("/state")), Ports()
    apiserver = flags(commands.apiserver_command(BINARY, layout, ports))
    assert apiserver["authorization-mode"] == "Node,RBAC"
    assert "PodSecurity" in apiserver["enable-admission-plugins"].split(",")
    assert apiserver["etcd-servers"] == f"https://127.0.0.1:{ports.etcd_client}"
    assert apiserver["etcd-cafile"] == "/state/pki/etcd-ca.crt"
    assert apiserver["etcd-certfile"] == "/state/pki/apiserver-etcd-client.crt"
    assert apiserver["service-account-signing-key-file"] == "/state/pki/service-account.key"
    assert apiserver["bind-address"] == "127.0.0.1"


def test_etcd_serves_only_tls_clients_with_a_certificate_from_its_own_ca() -> None:
    etcd = flags(commands.etcd_command(BINARY, StackLayout(Path("/state")), Ports()))
    assert all(etcd[flag].startswith("https://") for flag in ("listen-client-urls", "listen-peer-urls"))
    assert etcd["client-cert-auth"] == etcd["peer-client-cert-auth"] == "true"
    # Not the cluster CA: the controller-manager signs CSRs with that one.
    assert etcd["trusted-ca-file"] == etcd["peer-trusted-ca-file"] == "/state/pki/etcd-ca.crt"


def test_controller_manager_runs_job_and_gc_controllers_but_not_node_lifecycle() -> None:
    argv = commands.controller_manager_command(BINARY, StackLayout(Path("/state")), Ports())
    controllers = flags(argv)["controllers"].split(",")
    assert controllers == ["*", "-node-lifecycle-controller"]
    assert flags(argv)["root-ca-file"] == "/state/pki/ca.crt"


def test_every_file_a_component_flag_names_exists_once_pki_is_made(tmp_path: Path) -> None:
    layout, ports = StackLayout(tmp_path), Ports()
    layout.make_dirs()
    ensure_pki(layout)
    for user in ("controller-manager", "scheduler"):
        layout.kubeconfig_for(user).write_text("{}")
    argvs = [
        commands.etcd_command(BINARY, layout, ports),
        commands.apiserver_command(BINARY, layout, ports),
        commands.controller_manager_command(BINARY, layout, ports),
        commands.scheduler_command(BINARY, layout, ports),
    ]
    named_files = [
        value
        for argv in argvs
        for flag, value in flags(argv).items()
        if value.startswith(str(tmp_path)) and flag != "data-dir"  # etcd creates its own
    ]
    assert len(named_files) > 15
    assert [path for path in named_files if not Path(path).exists()] == []


def test_node_agent_command_follows_the_contract() -> None:
    argv = commands.node_agent_command(Path("/venv/bin/python"), StackLayout(Path("/state")))
    assert argv[:3] == ["/venv/bin/python", "-m", "kubetune_devtools.devstack.node_agent"]
    assert flags(argv) == {
        "kubeconfig": "/state/kubeconfig",
        "state-dir": "/state/node-agent",
        "nodes": "2",
        "node-prefix": "kt-node",
        "cpu": "8",
        "memory": "32Gi",
        "gpus": "8",
    }


def test_kubeconfig_loads_with_the_kubernetes_client(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    files = [tmp_path / name for name in ("ca.crt", "admin.crt", "admin.key")]
    for file in files:
        file.write_text("x")
    write_kubeconfig(path, render_kubeconfig("https://127.0.0.1:16443", *files, "admin"))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:16443"
    assert configuration.ssl_ca_cert == str(files[0])
    assert configuration.cert_file == str(files[1])
    assert path.stat().st_mode & 0o077 == 0


@pytest.fixture
def prometheus_config() -> dict[str, object]:
    files = (Path("/pki/ca.crt"), Path("/pki/p.crt"), Path("/pki/p.key"))
    rendered = render_prometheus_config("https://127.0.0.1:16443", *files, "127.0.0.1:19090")
    # Round trip through YAML: this is what Prometheus parses.
    loaded: dict[str, object] = yaml.safe_load(yaml.safe_dump(rendered))
    return loaded


def pods_job(config: dict[str, object]) -> dict[str, object]:
    jobs = config["scrape_configs"]
    assert isinstance(jobs, list)
    job: dict[str, object] = next(job for job in jobs if job["job_name"] == "kubernetes-pods")
    return job


def test_prometheus_discovers_pods_through_the_api_server(prometheus_config: dict[str, object]) -> None:
    job = pods_job(prometheus_config)
    assert job["kubernetes_sd_configs"] == [
        {
            "role": "pod",
            "api_server": "https://127.0.0.1:16443",
            "tls_config": {"ca_file": "/pki/ca.crt", "cert_file": "/pki/p.crt", "key_file": "/pki/p.key"},
        }
    ]
    interval = prometheus_config["global"]
    assert isinstance(interval, dict)
    assert 1 <= int(interval["scrape_interval"].rstrip("s")) <= 5


def test_port_annotation_replaces_the_discovered_port(prometheus_config: dict[str, object]) -> None:
    relabel = pods_job(prometheus_config)["relabel_configs"]
    assert isinstance(relabel, list)
    rule = next(r for r in relabel if r.get("target_label") == "__address__")
    # Prometheus joins source labels with ";" and anchors the (RE2) regex; Python's fullmatch is the same.
    for address, expected in (("127.0.5.3:8080", "127.0.5.3:9100"), ("127.0.5.3", "127.0.5.3:9100")):
        match = re.fullmatch(rule["regex"], f"{address};9100")
        assert match is not None
        assert rule["replacement"].replace("$1", match[1]).replace("$2", match[2]) == expected
    keep = relabel[0]
    assert keep["action"] == "keep"
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]

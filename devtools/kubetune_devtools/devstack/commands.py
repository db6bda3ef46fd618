"""Command lines of every stack component (pure: layout + ports + binaries in, argv out)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubetune_devtools.devstack.layout import Ports, StackLayout
from kubetune_devtools.devstack.pki import CA_NAME, ETCD_CA_NAME, SERVICE_ACCOUNT_KEY_NAME

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    minio: Path
    prometheus: Path


def apiserver_url(ports: Ports) -> str:
    return f"https://{LOOPBACK}:{ports.apiserver}"


def etcd_url(ports: Ports) -> str:
    return f"https://{LOOPBACK}:{ports.etcd_client}"


def etcd_command(binary: Path, layout: StackLayout, ports: Ports) -> list[str]:
    # TLS with client certificates from etcd's own CA on both ports: loopback alone would let any local
    # process (a pod of the node agent included) read every Secret straight from etcd.
    client = etcd_url(ports)
    peer = f"https://{LOOPBACK}:{ports.etcd_peer}"
    cert, key, ca = layout.cert("etcd-server"), layout.key("etcd-server"), layout.cert(ETCD_CA_NAME)
    return [
        str(binary),
        "--name=kubetune",
        f"--data-dir={layout.etcd_data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kubetune={peer}",
        "--client-cert-auth=true",
        f"--cert-file={cert}",
        f"--key-file={key}",
        f"--trusted-ca-file={ca}",
        "--peer-client-cert-auth=true",
        f"--peer-cert-file={cert}",
        f"--peer-key-file={key}",
        f"--peer-trusted-ca-file={ca}",
        # A dev cluster's history is small; compacting keeps etcd's RSS and disk flat over long sessions.
        "--auto-compaction-retention=1",
        "--quota-backend-bytes=2147483648",
        "--log-level=warn",
    ]


def apiserver_command(binary: Path, layout: StackLayout, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={etcd_url(ports)}",
        f"--etcd-cafile={layout.cert(ETCD_CA_NAME)}",
        f"--etcd-certfile={layout.cert('apiserver-etcd-client')}",
        f"--etcd-keyfile={layout.key('apiserver-etcd-client')}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={layout.cert('apiserver')}",
        f"--tls-private-key-file={layout.key('apiserver')}",
        f"--client-ca-file={layout.cert(CA_NAME)}",
        "--authorization-mode=Node,RBAC",
        # PodSecurity is on by default since 1.25; named here so the intent survives upstream changes.
        "--enable-admission-plugins=NodeRestriction,PodSecurity",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={layout.pki_dir / (SERVICE_ACCOUNT_KEY_NAME + '.pub')}",
        f"--service-account-signing-key-file={layout.key(SERVICE_ACCOUNT_KEY_NAME)}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--kubelet-client-certificate={layout.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={layout.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={layout.cert(CA_NAME)}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--requestheader-client-ca-file={layout.cert(CA_NAME)}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={layout.cert('front-proxy-client')}",
        f"--proxy-client-key-file={layout.key('front-proxy-client')}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def _control_plane_client(kubeconfig: Path, port: int) -> list[str]:
    """What controller-manager and scheduler share: one kubeconfig for their own API calls and for
    delegated authentication/authorization of /healthz, served on loopback."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
    ]


def controller_manager_command(binary: Path, layout: StackLayout, ports: Ports) -> list[str]:
    return [
        str(binary),
        *_control_plane_client(layout.kubeconfig_for("controller-manager"), ports.controller_manager),
        # The node agent is the only authority over its Nodes' readiness (it heartbeats and removes the
        # not-ready taint); the lifecycle controller would otherwise evict pods whenever the agent is
        # restarted during development.
        "--controllers=*,-node-lifecycle-controller",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={layout.key(SERVICE_ACCOUNT_KEY_NAME)}",
        f"--root-ca-file={layout.cert(CA_NAME)}",
        f"--cluster-signing-cert-file={layout.cert(CA_NAME)}",
        f"--cluster-signing-key-file={layout.key(CA_NAME)}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--cluster-name=kubetune-dev",
        # One replica: skipping leader election saves the ~15 s lease acquisition on every restart.
        "--leader-elect=false",
        "--v=1",
    ]


def scheduler_command(binary: Path, layout: StackLayout, ports: Ports) -> list[str]:
    return [
        str(binary),
        *_control_plane_client(layout.kubeconfig_for("scheduler"), ports.scheduler),
        "--leader-elect=false",
        "--v=1",
    ]


def minio_command(binary: Path, layout: StackLayout, ports: Ports) -> list[str]:
    return [
        str(binary),
        "server",
        str(layout.minio_data_dir),
        f"--address={LOOPBACK}:{ports.minio}",
        f"--console-address={LOOPBACK}:{ports.minio_console}",
        "--quiet",
    ]


def prometheus_command(binary: Path, layout: StackLayout, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--config.file={layout.prometheus_config}",
        f"--storage.tsdb.path={layout.prometheus_data_dir}",
        f"--web.listen-address={LOOPBACK}:{ports.prometheus}",
        "--storage.tsdb.retention.time=1d",
        "--web.enable-lifecycle",
    ]


def node_agent_command(python: Path, layout: StackLayout) -> list[str]:
    """The contract with the node agent: cluster-admin kubeconfig, 2 nodes with 8 GPUs each."""
    return [
        str(python),
        "-m",
        "kubetune_devtools.devstack.node_agent",
        f"--kubeconfig={layout.admin_kubeconfig}",
        f"--state-dir={layout.node_agent_dir}",
        "--nodes=2",
        "--node-prefix=kt-node",
        "--cpu=8",
        "--memory=32Gi",
        "--gpus=8",
    ]

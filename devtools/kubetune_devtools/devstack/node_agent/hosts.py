"""Per-pod hosts files: the agent's stand-in for cluster DNS of pods in a headless Service.

In a real cluster `hostname.subdomain` resolves through CoreDNS and the pod's search domains
(`<namespace>.svc.cluster.local`); here every form a pod may use is written as a hosts entry, and
the file is bind-mounted over /etc/hosts in the pod's private mount namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
_MAX_HOSTNAME = 63


@dataclass(frozen=True)
class PodAddress:
    """What DNS knows of one pod."""

    namespace: str
    hostname: str
    subdomain: str
    ip: str


def pod_hostname(pod: dict[str, Any]) -> str:
    """The pod's hostname as the kubelet sets it: spec.hostname, else the name cut to 63 characters."""
    spec = pod.get("spec", {})
    name: str = spec.get("hostname") or pod["metadata"]["name"]
    return name[:_MAX_HOSTNAME].rstrip("-.")


def pod_address(pod: dict[str, Any]) -> PodAddress | None:
    """The DNS record of a pod, or None while it has no IP yet."""
    ip = pod.get("status", {}).get("podIP")
    if not ip:
        return None
    return PodAddress(
        namespace=pod["metadata"]["namespace"],
        hostname=pod_hostname(pod),
        subdomain=pod.get("spec", {}).get("subdomain") or "",
        ip=ip,
    )


def dns_names(record: PodAddress, viewer_namespace: str) -> list[str]:
    """Names under which a pod in `viewer_namespace` can reach `record` (short forms only in-namespace)."""
    if not record.subdomain:
        return []
    service = f"{record.hostname}.{record.subdomain}.{record.namespace}"
    names = [service, f"{service}.svc", f"{service}.svc.{CLUSTER_DOMAIN}"]
    if record.namespace == viewer_namespace:
        names.insert(0, f"{record.hostname}.{record.subdomain}")
    return names


def render_hosts_file(own: PodAddress, peers: Iterable[PodAddress]) -> str:
    """The /etc/hosts a pod sees: localhost, itself, then every peer reachable by a DNS name."""
    lines = [
        "# Kubernetes-managed hosts file (kubetune node agent).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{own.ip}\t{' '.join([*dns_names(own, own.namespace)[::-1], own.hostname])}",
    ]
    for peer in sorted(set(peers), key=lambda p: (p.namespace, p.subdomain, p.hostname, p.ip)):
        if peer == own:
            continue
        names = dns_names(peer, own.namespace)
        if names:
            lines.append(f"{peer.ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"

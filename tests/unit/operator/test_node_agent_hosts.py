"""Hosts files give every DNS form of a headless-Service peer, and IPs are unique per pod."""

import pytest

from kubetune_devtools.devstack.node_agent.hosts import (
    PodAddress,
    pod_address,
    pod_hostname,
    render_hosts_file,
)
from kubetune_devtools.devstack.node_agent.ipam import AddressesExhaustedError, LoopbackIPAllocator


def entries(text: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            ip, *hostnames = line.split()
            names.update({name: ip for name in hostnames})
    return names


def test_peer_resolves_by_every_name_a_cluster_offers() -> None:
    own = PodAddress("team-a", "job-1", "workers", "127.64.0.2")
    peer = PodAddress("team-a", "job-0", "workers", "127.64.0.1")
    text = render_hosts_file(own, [own, peer])
    assert "127.0.0.1\tlocalhost\n" in text
    names = entries(text)
    for name in (
        "job-0.workers",
        "job-0.workers.team-a",
        "job-0.workers.team-a.svc",
        "job-0.workers.team-a.svc.cluster.local",
    ):
        assert names[name] == "127.64.0.1"
    assert names["job-1"] == "127.64.0.2"
    assert names["job-1.workers.team-a.svc.cluster.local"] == "127.64.0.2"


def test_other_namespace_peers_need_the_namespace() -> None:
    own = PodAddress("team-a", "a", "svc", "127.64.0.2")
    other = PodAddress("team-b", "b", "svc", "127.64.0.3")
    names = entries(render_hosts_file(own, [other]))
    assert "b.svc" not in names
    assert names["b.svc.team-b"] == "127.64.0.3"


def test_pods_without_subdomain_get_no_peer_entries() -> None:
    own = PodAddress("team-a", "a", "", "127.64.0.2")
    names = entries(render_hosts_file(own, [PodAddress("team-a", "b", "", "127.64.0.3")]))
    assert "b" not in names
    assert names["a"] == "127.64.0.2"


def test_hostname_and_address_from_pod() -> None:
    pod = {
        "metadata": {"name": "x" * 70, "namespace": "n"},
        "spec": {"subdomain": "s"},
        "status": {"podIP": "127.64.0.9"},
    }
    assert pod_hostname(pod) == "x" * 63
    assert pod_address(pod) == PodAddress("n", "x" * 63, "s", "127.64.0.9")
    pod["spec"]["hostname"] = "job-0"
    assert pod_hostname(pod) == "job-0"
    assert pod_address({"metadata": {"name": "p", "namespace": "n"}, "spec": {}, "status": {}}) is None


def test_allocator_gives_unique_loopback_addresses_and_does_not_reuse_at_once() -> None:
    allocator = LoopbackIPAllocator("127.64.0.0/24", first="127.64.0.1")
    allocator.reserve("127.64.0.1")
    first = allocator.allocate()
    second = allocator.allocate()
    assert first == "127.64.0.2"
    assert second == "127.64.0.3"
    allocator.release(first)
    assert allocator.allocate() == "127.64.0.4"


def test_allocator_reports_exhaustion() -> None:
    allocator = LoopbackIPAllocator("127.64.0.0/30", first="127.64.0.1")  # .1 and .2 usable
    allocator.allocate()
    allocator.allocate()
    with pytest.raises(AddressesExhaustedError, match=r"127\.64\.0\.0/30"):
        allocator.allocate()


def test_allocators_start_at_random_points_so_two_stacks_rarely_collide() -> None:
    starts = {LoopbackIPAllocator().allocate() for _ in range(20)}
    assert len(starts) > 15
    assert all(ip.startswith("127.") for ip in starts)

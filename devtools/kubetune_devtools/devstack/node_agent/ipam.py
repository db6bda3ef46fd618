"""Pod IP allocation from a loopback range.

Pods share the host's network namespace (see dns.py for why), so each gets its own 127.x.y.z
address: every 127/8 address is local on Linux, a pod can bind its own IP and reach any other.
Addresses are handed out round-robin so that a freed IP is not reused at once: a stale hosts entry
of a gone pod then points nowhere rather than at an unrelated new pod.
"""

from __future__ import annotations

import ipaddress
import random


class AddressesExhaustedError(RuntimeError):
    """Every address of the range is in use."""


class LoopbackIPAllocator:
    """Hands out unique host addresses of `cidr`, skipping network-like (.0) and broadcast-like (.255)."""

    def __init__(self, cidr: str = "127.64.0.0/10", first: str | None = None) -> None:
        """`first`: where round-robin starts; by default a random point of the range, so two agents on
        one machine (two stacks) are unlikely to hand out the same addresses."""
        self._network = ipaddress.IPv4Network(cidr)
        self._first = int(self._network.network_address) + 1
        self._last = int(self._network.broadcast_address) - 1
        if first is None:
            self._next = random.randint(self._first, self._last)
        else:
            self._next = int(ipaddress.IPv4Address(first))
        self._in_use: set[int] = set()

    def reserve(self, address: str) -> None:
        """Mark an address already given to a pod (found at start-up) as used."""
        value = int(ipaddress.IPv4Address(address))
        if self._first <= value <= self._last:
            self._in_use.add(value)

    def allocate(self) -> str:
        size = self._last - self._first + 1
        for _ in range(size):
            candidate = self._next
            self._next = self._first if candidate >= self._last else candidate + 1
            if candidate in self._in_use or candidate & 0xFF in (0, 255):
                continue
            self._in_use.add(candidate)
            return str(ipaddress.IPv4Address(candidate))
        raise AddressesExhaustedError(f"no free pod address left in {self._network}")

    def release(self, address: str) -> None:
        self._in_use.discard(int(ipaddress.IPv4Address(address)))

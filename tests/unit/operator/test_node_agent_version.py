"""The code fingerprint is stable for the same source and names the package's code."""

from kubetune_devtools.devstack.node_agent.version import code_fingerprint


def test_fingerprint_is_stable_and_short() -> None:
    first = code_fingerprint()
    assert first == code_fingerprint()
    assert len(first) == 16
    int(first, 16)  # hexadecimal

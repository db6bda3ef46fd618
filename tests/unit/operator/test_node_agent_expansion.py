"""`$(VAR)` expansion follows the kubelet's rules (cases from k8s expansion_test.go)."""

import pytest

from kubetune_devtools.devstack.node_agent.expansion import expand

VARS = {"VAR_A": "A", "VAR_B": "B", "VAR_EMPTY": "", "VAR_REF": "$(VAR_A)"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_B)", "A-B"),
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_REF)", "$(VAR_A)"),  # values are not expanded twice
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(VAR_A)", "$(VAR_A)"),  # $$ escapes
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$(VAR_A", "$(VAR_A"),  # unclosed reference kept
        ("$VAR_A", "$VAR_A"),
        ("$", "$"),
        ("plain", "plain"),
        ("$()", "$()"),
    ],
)
def test_expand_matches_kubelet_semantics(text: str, expected: str) -> None:
    assert expand(text, VARS) == expected

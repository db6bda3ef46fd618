"""The kubelet endpoint's pure parts: which container a path names (only Kubernetes names pass),
tailLines, limitBytes and bad queries."""

import pytest

from kubetune_devtools.devstack.node_agent.logs import (
    BadLogRequestError,
    LogOptions,
    LogTarget,
    parse_log_options,
    parse_log_path,
    select_log,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/containerLogs/team-a/hello/main", LogTarget("team-a", "hello", "main")),
        # Pod names are DNS-1123 subdomains (dots allowed), the others labels.
        ("/containerLogs/t-1/job-0.worker-2/c0", LogTarget("t-1", "job-0.worker-2", "c0")),
        (f"/containerLogs/{'n' * 63}/{'p' * 253}/{'c' * 63}", LogTarget("n" * 63, "p" * 253, "c" * 63)),
    ],
)
def test_log_path_names_a_container(path: str, expected: LogTarget) -> None:
    assert parse_log_path(path) == expected


@pytest.mark.parametrize(
    "path", ["/healthz", "/containerLogs/ns/pod", "/containerLogs/ns/pod/c/x", "/logs/a/b/c"]
)
def test_other_paths_are_not_log_paths(path: str) -> None:
    assert parse_log_path(path) is None


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("/containerLogs/ns/pod/..%2F..%2Fetc%2Fshadow", "container"),
        ("/containerLogs/ns/pod/..", "container"),
        ("/containerLogs/ns/../main", "pod"),
        ("/containerLogs/ns/a..b/main", "pod"),
        ("/containerLogs/ns/*/main", "pod"),
        ("/containerLogs/ns/p%2A/main", "pod"),
        ("/containerLogs/ns/p?q[a]/main", "pod"),
        ("/containerLogs/*/pod/main", "namespace"),
        ("/containerLogs/ns_x/pod/main", "namespace"),
        ("/containerLogs/ns/pod/Main", "container"),
        ("/containerLogs/ns/pod/-main", "container"),
        ("/containerLogs/ns/pod/main%00", "container"),
        ("/containerLogs/ns/pod/main%0A", "container"),
        ("/containerLogs/ns/pod/%2Fetc", "container"),
        ("/containerLogs/ns/pod.sub/c.d", "container"),
        (f"/containerLogs/{'n' * 64}/pod/main", "namespace"),
        (f"/containerLogs/ns/{'p' * 254}/main", "pod"),
        ("/containerLogs//pod/main", "namespace"),
    ],
)
def test_path_parts_outside_the_name_grammar_are_refused(path: str, part: str) -> None:
    with pytest.raises(BadLogRequestError, match=f"^{part} "):
        parse_log_path(path)


LOG = b"one\ntwo\nthree\n"


def test_parse_query() -> None:
    options = parse_log_options({"follow": ["true"], "tailLines": ["2"], "limitBytes": ["5"]})
    assert options == LogOptions(follow=True, previous=False, tail_lines=2, limit_bytes=5)
    assert parse_log_options({}) == LogOptions()


@pytest.mark.parametrize("query", [{"tailLines": ["x"]}, {"limitBytes": ["-1"]}])
def test_bad_query_names_the_parameter(query: dict[str, list[str]]) -> None:
    with pytest.raises(BadLogRequestError, match=next(iter(query))):
        parse_log_options(query)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (LogOptions(), LOG),
        (LogOptions(tail_lines=2), b"two\nthree\n"),
        (LogOptions(tail_lines=0), b""),
        (LogOptions(tail_lines=10), LOG),
        (LogOptions(limit_bytes=5), b"one\nt"),
        (LogOptions(tail_lines=1, limit_bytes=3), b"thr"),
    ],
)
def test_select_log(options: LogOptions, expected: bytes) -> None:
    assert select_log(LOG, options) == expected

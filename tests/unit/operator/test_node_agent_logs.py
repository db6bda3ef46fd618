"""Log selection of the kubelet endpoint: tailLines, limitBytes and bad queries."""

import pytest

from kubetune_devtools.devstack.node_agent.logs import (
    BadLogRequestError,
    LogOptions,
    parse_log_options,
    select_log,
)

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

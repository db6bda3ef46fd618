"""Local-path URIs: refused for jobs the operator runs, naming the field; S3 URIs pass."""

from __future__ import annotations

from kubetune_operator.api import JobStatus
from kubetune_operator.controller.conditions import set_condition
from kubetune_operator.controller.policies.local_paths import local_path_failure, local_path_fields

S3_SPEC = {
    "model": {"uri": "s3://models/base/"},
    "dataset": {"uri": "s3://data/train.jsonl"},
    "output": {"uri": "s3://models/tuned/x/"},
}


def test_s3_uris_pass() -> None:
    assert local_path_fields(S3_SPEC) == []
    assert local_path_failure(JobStatus(), S3_SPEC) is None


def test_every_local_uri_field_is_found_with_its_path() -> None:
    spec = {
        **S3_SPEC,
        "output": {"uri": "/data/out/"},
        "tasks": [{"name": "arc", "fewshotUri": "data/fewshot.jsonl"}],
        "baseline": {"uri": "s3://models/base/"},
    }
    assert local_path_fields(spec) == [
        ("spec.output.uri", "/data/out/"),
        ("spec.tasks[0].fewshotUri", "data/fewshot.jsonl"),
    ]


def test_a_local_output_fails_the_job_with_invalid_spec_naming_the_field_and_the_cli() -> None:
    failed = local_path_failure(JobStatus(), {**S3_SPEC, "model": {"uri": "./model"}})
    assert failed is not None and failed.phase == "Failed" and failed.reason == "InvalidSpec"
    assert 'spec.model.uri "./model" is a local path' in failed.message
    assert "kubetune train" in failed.message and "kubetune eval" in failed.message


def test_a_job_whose_children_exist_is_left_running() -> None:
    created = JobStatus(
        conditions=set_condition(
            [],
            "Created",
            True,
            reason="ChildrenCreated",
            message="",
            now="2026-01-01T00:00:00Z",
            generation=1,
        )
    )
    assert local_path_failure(created, {**S3_SPEC, "output": {"uri": "/out"}}) is None

"""The judge key goes only to the endpoint its Secret names: the real evaluator in an operator-run pod.

An EvalJob names a Secret bound to another endpoint: it fails with InvalidSpec (the Secret and both URLs
named, never the key) and the local judge server receives nothing. Bound to this endpoint, the same job
succeeds and the server sees the key (the control).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.s3 import ensure_bucket, upload_directory
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, wait_until
from kubetune_devtools.tiny_models import build_tiny_model, reverse_task_rows

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NAMESPACE_GLOB = "t-test-judge-key-*"  # the conftest's namespace names for the tests below
BUCKET = "judge-key-e2e"
KEY = "sk-team-b-" + secrets.token_hex(8)
EVJ = "evaljobs"


class RecordingJudge(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *_: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(dict(self.headers))
        body = json.dumps({"choices": [{"message": {"content": '{"rating": 7}'}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def prefix(stack: LocalStack, s3: S3Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    ensure_bucket(s3, BUCKET)
    prefix = secrets.token_hex(4)
    model = build_tiny_model(tmp_path_factory.mktemp("judge") / "model", hidden_size=64)
    upload_directory(s3, model, f"s3://{BUCKET}/{prefix}/model")
    rows = "".join(json.dumps(r) + "\n" for r in reverse_task_rows(3))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/rows.jsonl", Body=rows)
    return f"s3://{BUCKET}/{prefix}"


def _secrets(k8s: KubeClients, stack: LocalStack, namespace: str, bound_to: str) -> None:
    core: Any = k8s.core  # Any: the stubs want a V1Secret where the client takes a plain dict
    s3_keys = {
        "AWS_ACCESS_KEY_ID": stack.s3_access_key_id,
        "AWS_SECRET_ACCESS_KEY": stack.s3_secret_access_key,
    }
    core.create_namespaced_secret(namespace, {"metadata": {"name": "s3-creds"}, "stringData": s3_keys})
    judge = {"OPENAI_API_KEY": KEY, "endpoint": bound_to}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "team-b-judge"}, "stringData": judge})


def _evaljob(stack: LocalStack, prefix: str, judge_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "judged"},
        "spec": {
            "model": {"uri": f"{prefix}/model/"},
            "dataset": {"uri": f"{prefix}/rows.jsonl", "split": "all"},
            "tasks": [
                {"name": "rev", "templates": [{"prompt": "Reverse: {word}\n", "completion": "{reversed}"}]}
            ],
            "metrics": ["judge"],
            "generation": {"maxNewTokens": 2, "batchSize": 3},
            "judge": {"endpoint": judge_url, "model": "m", "apiKeySecret": "team-b-judge", "maxRetries": 0},
            "output": {"uri": f"{prefix}/eval-{secrets.token_hex(3)}/"},
            "storage": {
                "endpoint": stack.s3_endpoint_url,
                "region": stack.s3_region,
                "credentialsSecret": "s3-creds",
            },
            "runPolicy": {"maxRestarts": 0},
        },
    }


def _finished(objects: Objects) -> dict[str, Any] | None:
    status = objects.status(EVJ, "judged")
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def test_judge_key_bound_elsewhere_is_never_sent(
    k8s: KubeClients,
    stack: LocalStack,
    *,
    namespace: str,
    real_operator: OperatorProcess,
    prefix: str,
    judge_url: str,
) -> None:
    elsewhere = "https://api.team-b.example/v1"
    _secrets(k8s, stack, namespace, bound_to=elsewhere)
    objects = Objects(k8s.api_client, namespace)
    RecordingJudge.received.clear()
    objects.create(_evaljob(stack, prefix, judge_url))
    done = wait_until(lambda: _finished(objects), 240, "EvalJob finished")
    failed = next(c for c in done["conditions"] if c["type"] == "Failed")
    assert done["phase"] == "Failed" and failed["reason"] == "InvalidSpec", done
    assert (
        "'team-b-judge'" in failed["message"]
        and judge_url in failed["message"]
        and elsewhere in failed["message"]
    )
    assert KEY not in json.dumps(done)
    assert RecordingJudge.received == []


def test_judge_key_bound_to_this_endpoint_is_sent_there(
    k8s: KubeClients,
    stack: LocalStack,
    *,
    namespace: str,
    real_operator: OperatorProcess,
    prefix: str,
    judge_url: str,
) -> None:
    _secrets(k8s, stack, namespace, bound_to=judge_url + "/")  # another spelling of the same endpoint
    objects = Objects(k8s.api_client, namespace)
    RecordingJudge.received.clear()
    objects.create(_evaljob(stack, prefix, judge_url))
    done = wait_until(lambda: _finished(objects), 300, "EvalJob finished")
    assert done["phase"] == "Succeeded", done
    assert RecordingJudge.received and all(
        h["Authorization"] == f"Bearer {KEY}" for h in RecordingJudge.received
    )

"""A judge API key goes only to the endpoint its Secret names.

Anyone who may create an EvalJob may name any Secret of the namespace in `judge.apiKeySecret` and any URL
in `judge.endpoint`; without a binding, the stock evaluator would send someone else's key to a server of
the job author's choosing. So the Secret holds two keys: `OPENAI_API_KEY` and `endpoint`; the operator maps
them to OPENAI_API_KEY and KUBETUNE_JUDGE_KEY_ENDPOINT, and the evaluator refuses (InvalidSpec, before any
request) when the job's endpoint is not the bound one. Error messages name the Secret and both URLs, never
the key.

A local run (`kubetune eval`) without `apiKeySecret` uses the caller's own OPENAI_API_KEY as given; when
KUBETUNE_JUDGE_KEY_ENDPOINT is set, the same check applies.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.judge.client import chat_completions_url

API_KEY_ENV = "OPENAI_API_KEY"
BOUND_ENDPOINT_ENV = "KUBETUNE_JUDGE_KEY_ENDPOINT"
SECRET_ENDPOINT_KEY = "endpoint"
DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_identity(endpoint: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, chat-completions path): two spellings of one endpoint compare equal."""
    parts = urlsplit(chat_completions_url(endpoint.strip()))
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1  # not a valid port: equal to nothing a judge could listen on
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def judge_api_key(endpoint: str, api_key_secret: str | None) -> str | None:
    """The key to send to `endpoint` (None: there is none); EvalInputError when it is not bound to it."""
    key = os.environ.get(API_KEY_ENV) or None
    bound = os.environ.get(BOUND_ENDPOINT_ENV, "").strip()
    if key is None:
        return None  # nothing to protect: requests go without Authorization
    if not bound:
        if api_key_secret:
            raise EvalInputError(
                f"judge.apiKeySecret: Secret {api_key_secret!r} names no endpoint: add the key "
                f"{SECRET_ENDPOINT_KEY!r} holding the URL its API key may be sent to (e.g. {endpoint}); "
                "the key was not sent"
            )
        return key  # a local run with the caller's own key
    if endpoint_identity(bound) != endpoint_identity(endpoint):
        source = f"Secret {api_key_secret!r}" if api_key_secret else BOUND_ENDPOINT_ENV
        raise EvalInputError(
            f"judge.endpoint {endpoint} is not the endpoint {bound} that {source} binds its API key to; "
            "the key was not sent"
        )
    return key

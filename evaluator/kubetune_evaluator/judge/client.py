"""Async client for an OpenAI-compatible chat-completions judge: timeouts, retries, bounded concurrency.

A sample whose judgement still fails after all retries gets a `JudgeOutcome` with the error; the
run goes on (a flaky judge must not throw away an hour of generation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from kubetune_evaluator.judge.prompts import (
    PAIRWISE_RESPONSE_FORMAT,
    SINGLE_RESPONSE_FORMAT,
    JudgeOutcome,
    ResponseFormatStyle,
    VerdictParseError,
    Winner,
    combine_both_orders,
    pairwise_messages,
    parse_rating,
    parse_winner,
    response_format,
    single_messages,
)

T = TypeVar("T")
ERROR_BODY_CHARS = 200


@dataclass(frozen=True)
class JudgeSettings:
    endpoint: str  # base URL, e.g. http://judge:8000/v1 (".../chat/completions" is appended)
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    max_attempts: int = 3
    backoff_s: float = 0.5
    concurrency: int = 4
    max_tokens: int = 32
    response_format: ResponseFormatStyle = "json_schema"


@dataclass(frozen=True)
class JudgeItem:
    prompt: str
    reference: str
    answer: str
    baseline_answer: str | None = None


def _retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        # 4xx other than 408/429 are our fault (bad model name, bad key): retrying cannot help.
        status = error.response.status_code
        return status >= 500 or status in (408, 429)
    return isinstance(error, httpx.TransportError | VerdictParseError | ValueError | KeyError)


def chat_completions_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


class JudgeClient:
    def __init__(self, settings: JudgeSettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._url = chat_completions_url(settings.endpoint)
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def _ask(self, messages: list[dict[str, str]], openai_format: dict[str, Any]) -> str:
        payload: dict[str, Any] = {
            "model": self._settings.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self._settings.max_tokens,
        }
        wanted = response_format(self._settings.response_format, openai_format)
        if wanted is not None:
            payload["response_format"] = wanted
        response = await self._http.post(self._url, json=payload)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise ValueError(f"judge reply has no text content: {content!r}")
        return content

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=wait_exponential(multiplier=self._settings.backoff_s, max=30.0),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async with self._slots:
            async for attempt in retrying:
                with attempt:
                    return await call()
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def grade(self, item: JudgeItem) -> JudgeOutcome:
        async def call() -> float:
            reply = await self._ask(
                single_messages(item.prompt, item.reference, item.answer), SINGLE_RESPONSE_FORMAT
            )
            return parse_rating(reply)

        try:
            return JudgeOutcome(score=await self._with_retries(call))
        except Exception as error:  # recorded per sample, by design never fatal
            return JudgeOutcome(score=None, error=self._describe(error))

    async def compare_both_orders(self, item: JudgeItem) -> JudgeOutcome:
        if item.baseline_answer is None:
            return JudgeOutcome(score=None, error="no baseline answer to compare with")
        baseline_answer = item.baseline_answer

        async def verdict(answer_a: str, answer_b: str) -> Winner:
            async def call() -> Winner:
                messages = pairwise_messages(item.prompt, item.reference, answer_a, answer_b)
                return parse_winner(await self._ask(messages, PAIRWISE_RESPONSE_FORMAT))

            return await self._with_retries(call)

        try:
            model_first, model_second = await asyncio.gather(
                verdict(item.answer, baseline_answer), verdict(baseline_answer, item.answer)
            )
        except Exception as error:  # recorded per sample, by design never fatal
            return JudgeOutcome(score=None, error=self._describe(error))
        return JudgeOutcome(score=combine_both_orders(model_first, model_second))

    def _describe(self, error: BaseException) -> str:
        # The text lands in samples.jsonl and the report: a judge that echoes the request back must not
        # publish the key with it.
        text = _describe(error)
        key = self._settings.api_key
        return text.replace(key, "[api key]") if key else text


def _describe(error: BaseException) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        # Truncated: the endpoint decides what its error bodies hold, and they end up in the report.
        return f"HTTP {error.response.status_code} from judge: {error.response.text[:ERROR_BODY_CHARS]}"
    if isinstance(error, httpx.TimeoutException):
        return f"judge timed out: {type(error).__name__}"
    return f"{type(error).__name__}: {error}"[:300]


async def _judge_all(
    settings: JudgeSettings, items: Sequence[JudgeItem], pairwise: bool
) -> list[JudgeOutcome]:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    async with httpx.AsyncClient(timeout=settings.timeout_s, headers=headers) as http:
        client = JudgeClient(settings, http)
        judge = client.compare_both_orders if pairwise else client.grade
        return list(await asyncio.gather(*(judge(item) for item in items)))


def grade_answers(settings: JudgeSettings, items: Sequence[JudgeItem]) -> list[JudgeOutcome]:
    """Single-answer grading 1..10 of every item."""
    return asyncio.run(_judge_all(settings, items, pairwise=False))


def compare_answers(settings: JudgeSettings, items: Sequence[JudgeItem]) -> list[JudgeOutcome]:
    """Pairwise model-vs-baseline judgement of every item, in both orders (1 win, 0.5 tie, 0 loss)."""
    return asyncio.run(_judge_all(settings, items, pairwise=True))

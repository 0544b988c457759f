"""Post a run's rows to a webhook as JSON batches, retrying with backoff.

Every batch carries an ``Idempotency-Key`` that stays the same across its
retries, so a receiver can drop a batch it has already stored.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from custan.engine import Result
from custan.errors import RunError, UsageError
from custan.sinks.text_formats import formatted_rows, json_object

logger = logging.getLogger("custan.webhook")

PREFIX = "CUSTAN_WEBHOOK_"
HEADER_PREFIX = PREFIX + "HEADER_"
# 408, 429 and these 5xx statuses mean "try again later"; other errors would repeat.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class WebhookError(RunError):
    """The webhook rejected a batch, or kept failing after every retry."""


@dataclass
class WebhookSettings:
    """Webhook URL, batching, retry and header settings from ``CUSTAN_WEBHOOK_*``."""

    url: str | None = None
    batch_size: int = 500
    retries: int = 3
    backoff: float = 0.5
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None):
        """Read the settings; a variable that is not set keeps the default."""
        env = os.environ if environment is None else environment
        defaults = cls()
        return cls(
            url=env.get(PREFIX + "URL") or None,
            batch_size=_number(env, "BATCH_SIZE", defaults.batch_size, int, 1),
            retries=_number(env, "RETRIES", defaults.retries, int, 0),
            backoff=_number(env, "BACKOFF", defaults.backoff, float, 0),
            timeout=_number(env, "TIMEOUT", defaults.timeout, float, 0.001),
            headers=_headers(env),
        )


def _number(env: Mapping[str, str], suffix: str, default, kind: type, minimum):
    text = env.get(PREFIX + suffix)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise UsageError(
            f"invalid {PREFIX + suffix} {text!r}; "
            f"expected a number of at least {minimum}"
        )
    return value


def _headers(env: Mapping[str, str]) -> dict[str, str]:
    """Turn CUSTAN_WEBHOOK_HEADER_X_API_KEY=secret into the header X-Api-Key."""
    headers = {}
    for name, value in env.items():
        if name.startswith(HEADER_PREFIX) and len(name) > len(HEADER_PREFIX):
            words = name[len(HEADER_PREFIX) :].split("_")
            headers["-".join(word.capitalize() for word in words)] = value
    return headers


def redact(url: str) -> str:
    """Return ``url`` without user info, query or fragment, which may hold secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class WebhookSink:
    """The ``webhook`` format: rows go to a URL, not to a file."""

    name = "webhook"
    writes_files = False

    def __init__(
        self,
        destination: str | None = None,
        settings: WebhookSettings | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings or WebhookSettings.from_environment()
        url = destination or self.settings.url
        if not url:
            raise UsageError(
                f"the webhook format needs a URL; pass --output URL or set {PREFIX}URL"
            )
        self.url: str = url
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise UsageError(
                f"invalid webhook URL {redact(self.url)!r}; "
                "use an http:// or https:// URL"
            )
        self.client = client
        self.sleep = time.sleep

    def write(self, result: Result, stream: TextIO) -> None:
        """Post every row of ``result``; ``stream`` is not written to."""
        run_id = uuid.uuid4().hex
        total = -(-result.row_count // self.settings.batch_size)
        client = self.client or httpx.Client(timeout=self.settings.timeout)
        try:
            for number, body in enumerate(self._bodies(result, run_id, total), start=1):
                self._post(client, body, f"{run_id}-{number}", number, total)
            logger.info(
                "posted %d rows in %d batches to %s",
                result.row_count,
                total,
                redact(self.url),
            )
        finally:
            if self.client is None:
                client.close()

    def _bodies(self, result: Result, run_id: str, total: int) -> Iterator[str]:
        names = [column.name for column in result.columns]
        rules = result.plan.rules.name or result.plan.rules.file
        rows: list[str] = []
        number = 0
        for row in formatted_rows(result):
            rows.append(json_object(names, row))
            if len(rows) == self.settings.batch_size:
                number += 1
                yield _body(rules, run_id, number, total, rows)
                rows = []
        if rows:
            yield _body(rules, run_id, number + 1, total, rows)

    def _post(
        self, client: httpx.Client, body: str, key: str, number: int, total: int
    ) -> None:
        headers = {
            **self.settings.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        where = f"webhook {redact(self.url)}, batch {number} of {total}"
        for attempt in range(self.settings.retries + 1):
            last = attempt == self.settings.retries
            try:
                response = client.post(self.url, content=body.encode(), headers=headers)
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}"
                if last:
                    raise WebhookError(
                        f"{where}: failed after {attempt + 1} attempts: {failure}"
                    ) from None
                self._wait(where, failure, attempt, None)
                continue
            if response.is_success:
                return
            failure = f"HTTP {response.status_code}"
            if response.status_code not in RETRY_STATUSES:
                raise WebhookError(
                    f"{where}: rejected with {failure}: {response.text[:200].strip()}"
                )
            if last:
                raise WebhookError(
                    f"{where}: failed after {attempt + 1} attempts: {failure}"
                )
            self._wait(where, failure, attempt, response.headers.get("Retry-After"))

    def _wait(self, where: str, failure: str, attempt: int, retry_after: str | None):
        delay = self.settings.backoff * 2**attempt
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        logger.warning("%s: %s; retrying in %.2f s", where, failure, delay)
        self.sleep(delay)


def _body(rules: str, run_id: str, number: int, total: int, rows: list[str]) -> str:
    """Build the batch's JSON text; row values keep their exact decimal digits."""
    header = json_object(
        ["rules", "run", "batch", "batches"], [rules, run_id, number, total]
    )
    return header[:-1] + ', "rows": [' + ", ".join(rows) + "]}"

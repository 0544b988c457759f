"""HTTP client for Payload's list queries: paging, retries and error messages.

Every request sends the secret key as the HTTP Basic username and an
``X-API-Version`` header. The key never appears in a log line or an error.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from custan.errors import DataError, RunError
from custan.sources.payload.urls import invalid_url_message, redact_url

logger = logging.getLogger("custan.sources.payload")

DEFAULT_VERSION = "v2"
RETRIED_STATUSES = frozenset({429, 503})

Params = list[tuple[str, str]]
Row = dict[str, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that failed for a passing reason.

    The wait before retry n (from 0) is a random time between half and all of
    ``base_seconds * 2**n``, capped at ``max_wait_seconds``. A ``Retry-After``
    header replaces it. A retry whose wait would end after ``total_seconds``
    from the first attempt is not made, and the request fails instead.
    """

    attempts: int = 6
    base_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    total_seconds: float = 120.0

    def backoff(self, retry: int) -> float:
        ceiling = min(self.max_wait_seconds, self.base_seconds * 2**retry)
        return random.uniform(ceiling / 2, ceiling)


DEFAULT_RETRY = RetryPolicy()


class _Secret:
    """The API key, shown as asterisks by repr()."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'********'"


class _Stopped(Exception):
    """The request's page loop has ended, so it is not retried."""


class _Retryable(Exception):
    """A failure worth another attempt, with the server's requested wait if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PayloadClient:
    """Sends list queries to one Payload API and reads their rows.

    Example:
        >>> client = PayloadClient(url, key, "v2", "PAYLOAD_API_KEY")
        >>> params = [("fields[0]", "id"), ("order_by[0]", "id")]
        >>> for page in client.pages("transactions", params):  # doctest: +SKIP
        ...     print(len(page))
    """

    def __init__(
        self,
        url: str,
        key: str,
        api_version: str,
        key_env: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        page_size: int = 5000,
        max_in_flight: int = 4,
        url_setting: str | None = None,
    ) -> None:
        # The user info, query and fragment are dropped, so no log line or message
        # shows a credential. Requests lose nothing: the key is sent as Basic
        # auth, and httpx replaces a base URL's query with each request's params.
        self.url = redact_url(url)
        self.url_setting = url_setting
        self.api_version = api_version
        self.key_env = key_env
        self.retry = retry or DEFAULT_RETRY
        self.page_size = page_size
        self.max_in_flight = max_in_flight
        self._key = _Secret(key)
        self._http = httpx.Client(
            base_url=self.url,
            auth=httpx.BasicAuth(key, ""),
            headers={"X-API-Version": api_version, "Accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_in_flight),
        )

    def __repr__(self) -> str:
        return f"<PayloadClient url={self.url!r} api_version={self.api_version!r}>"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PayloadClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(
        self, resource: str, params: Params, stop: threading.Event | None = None
    ) -> list[Row]:
        """Send one list request and return its rows, retrying passing failures.

        Setting ``stop`` cuts the wait before a retry short, and no retry follows.
        """
        stop = stop or threading.Event()
        started = time.monotonic()
        for attempt in range(self.retry.attempts):
            try:
                return self._request(resource, params)
            except _Retryable as failure:
                if stop.is_set():
                    # An abandoned request fails quietly: no caller reads its rows.
                    raise _Stopped() from None
                wait_seconds = self._wait_before_retry(failure, attempt, started)
                logger.warning(
                    "GET /%s failed (%s); retry %d of %d in %.1f s",
                    resource,
                    failure,
                    attempt + 1,
                    self.retry.attempts - 1,
                    wait_seconds,
                )
                if stop.wait(wait_seconds):
                    raise _Stopped() from None
        raise AssertionError("unreachable: the last attempt raises")

    def pages(
        self,
        resource: str,
        params: Params,
        on_rows: Callable[[int], None] | None = None,
    ) -> Iterator[list[Row]]:
        """Yield every page of a query in order, until the server returns an empty one.

        ``params`` must contain an ``order_by`` that makes the order stable,
        or pages could overlap. Up to ``max_in_flight`` pages are requested at
        once. The window starts at one page and doubles after each full page,
        so a short result costs two requests. When the loop ends early, by an
        error or by Ctrl-C, requests still in flight are abandoned, not waited for.
        """
        stop = threading.Event()
        pending: dict[int, Future[list[Row]]] = {}
        sequence = _PageSequence(self.page_size)
        next_offset, window, finished = 0, 1, False
        try:
            while True:
                while not finished and len(pending) < window:
                    pending[next_offset] = self._submit(
                        resource, params, next_offset, stop
                    )
                    next_offset += self.page_size
                if not pending:
                    return
                offset = min(pending)
                rows = pending.pop(offset).result()
                if not rows:
                    # The end: pages requested beyond it are empty too.
                    finished = True
                    pending.clear()
                    continue
                sequence.check(offset, rows)
                if len(rows) == self.page_size:
                    window = min(window * 2, self.max_in_flight)
                if on_rows is not None:
                    on_rows(len(rows))
                yield rows
        finally:
            stop.set()

    def _submit(
        self, resource: str, params: Params, offset: int, stop: threading.Event
    ) -> Future[list[Row]]:
        page = [*params, ("limit", str(self.page_size)), ("offset", str(offset))]
        future: Future[list[Row]] = Future()
        # A daemon thread, unlike a ThreadPoolExecutor worker, is not joined at
        # exit, so Ctrl-C does not wait for a request's read timeout.
        worker = threading.Thread(
            target=self._fetch_into_future,
            args=(future, resource, page, stop),
            name=f"payload-offset-{offset}",
            daemon=True,
        )
        worker.start()
        return future

    def _fetch_into_future(
        self,
        future: Future[list[Row]],
        resource: str,
        params: Params,
        stop: threading.Event,
    ) -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(self.fetch(resource, params, stop))
        except BaseException as error:
            # Anything left uncaught would leave the reader waiting forever.
            future.set_exception(error)

    def _request(self, resource: str, params: Params) -> list[Row]:
        try:
            response = self._http.get(resource, params=tuple(params))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as error:
            # Not retried, because the URL stays invalid. UnicodeError comes from
            # encoding an international host name (IDNA).
            message = invalid_url_message(self.url, str(error), self.url_setting)
            raise RunError(message) from None
        except httpx.TimeoutException as error:
            raise _Retryable(f"timed out: {type(error).__name__}") from None
        except httpx.TransportError as error:
            raise _Retryable(f"connection failed: {type(error).__name__}") from None
        if response.status_code in RETRIED_STATUSES:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        if response.status_code != 200:
            raise self._error(response, resource)
        try:
            body = json.loads(response.text, parse_float=Decimal)
        except json.JSONDecodeError:
            raise _Retryable("the response body is not complete JSON") from None
        values = body.get("values") if isinstance(body, dict) else None
        if not isinstance(values, list):
            raise DataError(
                f"Payload returned an unexpected body for GET /{resource}: "
                "expected an object with a 'values' list"
            )
        return values

    def _wait_before_retry(
        self, failure: _Retryable, attempt: int, started: float
    ) -> float:
        """Return the wait before the next attempt, or raise if none is left."""
        elapsed = time.monotonic() - started
        failed = (
            f"Payload request failed after {_count(attempt + 1, 'attempt')} in "
            f"{elapsed:.1f} s: {failure}"
        )
        outage = (
            f"{failed}; the API at {self.url} may be down or rate limiting, "
            "try again later"
        )
        if attempt + 1 >= self.retry.attempts:
            raise RunError(outage)
        wait_seconds = failure.retry_after
        if wait_seconds is None:
            wait_seconds = self.retry.backoff(attempt)
        if elapsed + wait_seconds <= self.retry.total_seconds:
            return wait_seconds
        if failure.retry_after is None:
            raise RunError(outage)
        raise RunError(
            f"{failed}; the server asked to wait {_seconds(wait_seconds)} "
            "(Retry-After), which goes past the retry limit of "
            f"{_seconds(self.retry.total_seconds)}; try again later"
        )

    def _error(self, response: httpx.Response, resource: str) -> RunError:
        if response.status_code == 401:
            return RunError(
                "Payload rejected the API key (HTTP 401 Unauthorized); check the "
                f"secret key in the environment variable {self.key_env}"
            )
        error_type, description = _error_envelope(response)
        message = f"Payload API error on GET /{resource}: HTTP {response.status_code}"
        if error_type:
            message += f" {error_type}"
        if description:
            message += f": {description}"
        return RunError(message.replace(self._key.reveal(), "********"))


class _PageSequence:
    """Checks that each page of a query carries on from the page before it."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.previous: list[Row] | None = None
        self.previous_offset = 0

    def check(self, offset: int, rows: list[Row]) -> None:
        """Raise DataError if ``rows`` show that the server does not page."""
        if len(rows) > self.page_size:
            raise DataError(
                f"Payload returned {len(rows)} rows at offset {offset} for a page "
                f"of at most {self.page_size}, so it ignores the limit parameter; "
                "check that the URL points at the Payload API"
            )
        if self.previous is not None and len(self.previous) < self.page_size:
            # A short page followed by more rows means the server returns fewer
            # rows than the limit requests, so stepping the offset by the limit
            # skips rows.
            raise DataError(
                "Payload returned fewer rows than the page size "
                f"({self.page_size}) before the last page, so it caps the page "
                "size; use a smaller page size"
            )
        if rows == self.previous:
            # Rows are ordered by a unique key, so two equal pages mean the
            # offset was ignored, and paging would never end.
            raise DataError(
                f"Payload returned the same {len(rows)} rows at offset {offset} "
                f"as at offset {self.previous_offset}, so it ignores the offset "
                "parameter; check that the URL points at the Payload API"
            )
        self.previous, self.previous_offset = rows, offset


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value.is_integer() else f"{value:.1f} s"


def _error_envelope(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    description = body.get("error_description") or body.get("description")
    text = " ".join(str(description).split()) if description else None
    return body.get("error_type"), text


def _retry_after(response: httpx.Response) -> float | None:
    """Read Retry-After as seconds or as an HTTP date (RFC 9110, section 10.2.3)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

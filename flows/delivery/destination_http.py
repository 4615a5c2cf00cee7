"""The HTTP JSON batch destination: records in batches, retried with tenacity, each batch's
outcome its own.

Request: `POST url` with `{"sync": name, "run_id": ..., "batch": n, "records": [{"operation":
"upsert" | "update" | "delete", "key": ..., "fields": {...}}]}` and the header
`Idempotency-Key: <run id>-<batch>` (a retried batch carries the same key, so the endpoint can
apply it once). `update` (mode `update_only`) asks the endpoint to change a record it holds and
never create one. Response: `{"results": [{"key": ..., "status": "ok" | "error" | "skipped",
"error": "..."}]}`; `skipped` means an `update` found no record of that key. A key missing from
the results counts as failed.

Retries (tenacity): network errors, timeouts, 408, 429 and 5xx, up to `max_attempts` per batch.
A 429 or 503 with `Retry-After` (seconds or an HTTP date) is retried after the time it names;
without it, after an exponential backoff (`backoff_seconds` x 1, 2, 4 ..., at most 60 s). A
`Retry-After` longer than `max_retry_after_seconds` is not waited for: that batch fails, the
batches after it are not sent (the endpoint asked us to stop), and all go again next run.

A batch that fails (after its retries, a 4xx, a response that is not the JSON above) marks its
own records failed with the reason; batches before and after it keep their own results.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import RetryCallState, retry, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential

from flows.delivery.destination_base import (
    Check,
    DestinationResult,
    DestinationUnavailable,
    json_value,
    mask,
)
from flows.delivery.sync_config import HttpDestination, SyncSpec
from flows.errors import TransientHttpError
from flows.progress import report
from flows.secrets import read_secret

log = logging.getLogger(__name__)

RETRY_AFTER_STATUSES = (429, 503)


class RetryLater(TransientHttpError):
    """A transient failure; `retry_after`: the seconds the endpoint asked us to wait, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WaitTooLong(RuntimeError):
    """The endpoint asked to wait longer than `max_retry_after_seconds`."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class _RecordResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str | int
    status: Literal["ok", "error", "skipped"]
    error: str | None = None


class _BatchResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    results: list[_RecordResult]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delay-seconds or an HTTP date (RFC 9110 10.2.3); None when
    absent or unreadable. A date in the past is 0."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class wait_retry_after(wait_base):
    """Wait what the endpoint's Retry-After named, else what `fallback` says."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RetryLater) and exc.retry_after is not None:
            return exc.retry_after
        return float(self.fallback(retry_state))


def _pause(seconds: float) -> None:
    """tenacity's sleep between attempts (tests replace it to see the waits)."""
    time.sleep(seconds)


def _errors(exc: ValidationError) -> str:
    """A response's shape errors, without the values in it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:3]
    )


class HttpWriter:
    """POST batches of records as JSON; read per-record results from each response."""

    def __init__(self, spec: SyncSpec) -> None:
        assert isinstance(spec.destination, HttpDestination)
        self.spec, self.dest = spec, spec.destination

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        for header, env in self.dest.headers_env.items():
            value = read_secret(env)
            if value is None:
                raise ValueError(
                    f"sync {self.spec.name}: environment variable {env} is not set and no "
                    "secret file of that name is in EXPANSION_SECRETS_DIR"
                )
            headers[header] = value
        return headers

    # --- dry run --------------------------------------------------------------------------

    def check(self, changes: pd.DataFrame) -> Check:
        import httpx

        headers = self._headers()  # a missing token is found before anything is sent
        where = f"HTTP destination of sync {self.spec.name}"
        if self.dest.check_url:
            try:
                response = httpx.get(
                    self.dest.check_url, headers=headers, timeout=self.dest.timeout_seconds
                )
            except httpx.HTTPError as exc:
                raise DestinationUnavailable(
                    f"{where}: GET {_origin(self.dest.check_url)} failed: {mask(exc)}"
                ) from None
            if not response.is_success:
                raise DestinationUnavailable(
                    f"{where}: GET {_origin(self.dest.check_url)} answered HTTP "
                    f"{response.status_code} (wanted 2xx)"
                )
            return Check(f"GET {_origin(self.dest.check_url)}: HTTP {response.status_code}")
        url = httpx.URL(self.dest.url)
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=self.dest.timeout_seconds) as s:
                if url.scheme == "https":
                    with ssl.create_default_context().wrap_socket(s, server_hostname=host):
                        pass
        except (OSError, ssl.SSLError) as exc:
            raise DestinationUnavailable(
                f"{where}: cannot connect to {host}:{port}: {mask(exc)}"
            ) from None
        tls = " and TLS" if url.scheme == "https" else ""
        return Check(f"TCP{tls} connection to {host}:{port} opened (no request sent)")

    # --- send -----------------------------------------------------------------------------

    def send(self, changes: pd.DataFrame, run_id: str, *, force: bool = False) -> DestinationResult:
        import httpx

        headers = self._headers()
        update_only = self.spec.mode == "update_only"
        records = [
            {
                "operation": "delete"
                if op == "delete"
                else ("update" if update_only else "upsert"),
                "key": key,
                "fields": {}
                if op == "delete"
                else {f: json_value(row[f]) for f in self.spec.fields},
            }
            for op, key, row in zip(
                changes["_operation"], changes["_key"], changes.to_dict("records"), strict=True
            )
        ]
        result = DestinationResult(accepted=set(), failed={})
        size = self.dest.batch_size
        batches = [records[i : i + size] for i in range(0, len(records), size)]
        with httpx.Client(timeout=self.dest.timeout_seconds) as client:
            for batch, chunk in enumerate(batches, start=1):
                report(f"sync {self.spec.name}", batch - 1, len(batches))  # a progress bar
                keys = [r["key"] for r in chunk]
                body = {"sync": self.spec.name, "run_id": run_id, "batch": batch, "records": chunk}
                try:
                    answer = self._post(
                        client, {**headers, "Idempotency-Key": f"{run_id}-{batch}"}, batch, body
                    )
                except WaitTooLong as exc:
                    reason = f"batch {batch} not delivered: {exc}"
                    log.warning("sync %s: %s", self.spec.name, reason)
                    result.failed.update(dict.fromkeys(keys, reason))
                    rest = [r["key"] for later in batches[batch:] for r in later]
                    if rest:
                        log.warning(
                            "sync %s: batches %s-%s not sent (the endpoint asked to wait %.0f s)",
                            self.spec.name,
                            batch + 1,
                            len(batches),
                            exc.seconds,
                        )
                    result.failed.update(
                        dict.fromkeys(rest, f"not sent: after batch {batch}, {exc}")
                    )
                    break
                except Exception as exc:  # this batch only: the others keep their results
                    reason = f"batch {batch} not delivered: {mask(exc)}"
                    log.warning("sync %s: %s", self.spec.name, reason)
                    result.failed.update(dict.fromkeys(keys, reason))
                    continue
                self._read(answer, keys, batch, result)
        report(f"sync {self.spec.name}", len(batches), len(batches))
        return result

    def _read(
        self, answer: _BatchResponse, keys: list[str], batch: int, result: DestinationResult
    ) -> None:
        answered = {str(r.key): r for r in answer.results}
        for key in keys:
            record = answered.get(key)
            if record is None:
                result.failed[key] = f"batch {batch}: no result for this record in the response"
            elif record.status == "ok":
                result.accepted.add(key)
            elif record.status == "skipped":
                result.skipped.add(key)
            else:
                result.failed[key] = record.error or "rejected"
        strays = set(answered) - set(keys)
        if strays:
            log.warning(
                "sync %s: batch %s answered for %s key(s) it was not sent, e.g. %s",
                self.spec.name,
                batch,
                len(strays),
                sorted(strays)[:3],
            )

    def _post(
        self, client: Any, headers: dict[str, str], batch: int, body: dict[str, Any]
    ) -> _BatchResponse:
        import httpx

        dest, name = self.dest, self.spec.name

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "sync %s: batch %s attempt %s: %s; retrying in %.1f s",
                name,
                batch,
                state.attempt_number,
                exc,
                state.upcoming_sleep,
            )

        @retry(
            retry=retry_if_exception_type(TransientHttpError),
            stop=stop_after_attempt(dest.max_attempts),
            wait=wait_retry_after(wait_exponential(multiplier=dest.backoff_seconds, max=60)),
            sleep=lambda seconds: _pause(seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        def post() -> _BatchResponse:
            try:
                response = client.post(dest.url, content=json.dumps(body), headers=headers)
            except httpx.TransportError as exc:  # connect errors, timeouts, broken responses
                raise RetryLater(f"{type(exc).__name__}: {mask(exc)}") from None
            status = response.status_code
            if status in RETRY_AFTER_STATUSES:
                header = response.headers.get("Retry-After")
                seconds = retry_after_seconds(header)
                if seconds is not None and seconds > dest.max_retry_after_seconds:
                    raise WaitTooLong(
                        f"HTTP {status} with Retry-After {header!r} ({seconds:.0f} s), more than "
                        f"max_retry_after_seconds ({dest.max_retry_after_seconds:g} s)",
                        seconds,
                    )
                raise RetryLater(f"HTTP {status}", seconds)
            if status == 408 or status >= 500:
                raise RetryLater(f"HTTP {status}")
            if not response.is_success:  # 4xx; a redirect is not followed
                raise ValueError(f"HTTP {status}: {mask(response.text[:200])}")
            try:
                return _BatchResponse.model_validate_json(response.content)
            except ValidationError as exc:
                raise ValueError(
                    f"HTTP {status} with a malformed response: {_errors(exc)}"
                ) from None

        return post()


def _origin(url: str) -> str:
    """scheme://host:port/path of a URL, without credentials or query."""
    import httpx

    u = httpx.URL(url)
    return f"{u.scheme}://{u.host}{f':{u.port}' if u.port else ''}{u.path}"

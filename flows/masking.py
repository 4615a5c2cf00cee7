"""Masking: what an error, a log line or a record quotes of a file or a setting is bounded and
shows no secret.

File content is untrusted: a landing-zone file can hold anything (a DSN with its password in
its first line). Every excerpt that reaches a person or a record passes through `mask_text`,
which masks what looks like a secret and bounds the length:

- the password of a URL's userinfo (`postgresql://user:***@host/db`),
- `password=`, `pwd=`, `token=`, `secret=`, `api_key=`, ... pairs (also `key: value` and
  JSON's `"key": "value"`),
- the credentials of an `Authorization: Bearer ...` header,
- the value of every secret the pipeline has read (`flows.secrets.read_secret` registers each
  value here with `register_secret`), wherever it appears.

Standard library only: every module (errors included) may import it.
"""

from __future__ import annotations

import logging
import re
from typing import overload
from urllib.parse import unquote, urlsplit

MASK = "***"
DEFAULT_LIMIT = 400  # characters of an excerpt shown
MIN_SECRET_LENGTH = 4  # shorter registered values are not masked: they would mask everything
_WINDOW = 4096  # characters beyond the limit that are masked before the text is cut

_KEYS = (
    r"password|passwd|pwd|passphrase|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|"
    r"secret|client[_-]?secret|secret[_-]?key|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|credentials?"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / Basic abc / Token abc (also as key=value, JSON, a header)
    (
        re.compile(r"(?i)(\b(?:bearer|basic|digest|token)\s+)[A-Za-z0-9._~+/=:-]{6,}"),
        rf"\g<1>{MASK}",
    ),
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
            r"(?!(?:bearer|basic|digest|token)\s)[^\s\"',;]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # scheme://user:password@host: keep the user and the host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@\"']*:)[^\s@\"']+@"), rf"\g<1>{MASK}@"),
    # password=..., "token": "...", api_key: ..., pwd='...'
    (
        re.compile(
            rf"(?i)(\b(?:{_KEYS})[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}}\]]+)",
        ),
        rf"\g<1>{MASK}",
    ),
)

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask `value` from now on wherever it appears (and a URL's password inside it, and the
    `password=` of a libpq key/value DSN)."""
    if not value:
        return
    value = value.strip()
    candidates = {value}
    try:
        parts = urlsplit(value)
        if parts.password:
            candidates |= {parts.password, unquote(parts.password)}
    except ValueError:
        pass
    candidates |= {m.group(2).strip("'\"") for m in _PATTERNS[-1][0].finditer(value)}
    _secrets.update(c for c in candidates if len(c) >= MIN_SECRET_LENGTH and c != MASK)


def forget_secrets() -> None:
    """Forget every registered value (tests)."""
    _secrets.clear()


def mask_fields(obj: object, **limits: int | None) -> None:
    """Mask and bound the named text fields of `obj` in place, frozen dataclasses included
    (call it from `__post_init__`): `mask_fields(self, value=120, reason=600)`."""
    for name, limit in limits.items():
        value = getattr(obj, name)
        if isinstance(value, str):
            object.__setattr__(obj, name, mask_text(value, limit))


def _clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


@overload
def mask_text(text: str, limit: int | None = ..., *, line_limit: int | None = ...) -> str: ...
@overload
def mask_text(text: None, limit: int | None = ..., *, line_limit: int | None = ...) -> None: ...
def mask_text(
    text: str | None, limit: int | None = DEFAULT_LIMIT, *, line_limit: int | None = None
) -> str | None:
    """`text` with what looks like a secret masked, cut to `limit` characters (None: whole),
    and each line cut to `line_limit` (None: lines are not cut on their own).

    A cut text ends with `... (<n> characters)`. Masking runs before the cut, over the first
    `limit` + 4096 characters only, so a huge file line costs no more than a short one.
    """
    if text is None:
        return None
    text = str(text)
    if line_limit is not None:  # a registered secret may span lines (a PEM key)
        text = "\n".join(mask_text(line, line_limit) for line in _registered(text).split("\n"))
        return _clip(text, limit)  # each line masked already
    total = len(text)
    if limit is not None and total > limit + _WINDOW:
        return f"{_mask(text[: limit + _WINDOW])[:limit]}... ({total} characters)"
    return _clip(_mask(text), limit)


def _registered(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _mask(text: str) -> str:
    text = _registered(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskFilter(logging.Filter):
    """A logging filter: the formatted message (and an exception's text) masked, for handlers
    whose lines leave the process (the console, the Prefect API's log table)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, None)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info), None)
        return True

"""Credentials kept out of what resbench writes: values of secret-looking keys and the
userinfo of URIs (``user:password@``, ``TOKEN@``) become ``***``. Standard library only, so
the driver's state files and the trial workers use it without importing MLflow."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
# Word parts of a param / tag key that mark it as a credential (``aws_secret_access_key``,
# ``api_key``, ``apiKey``, ``db.password``); matched as whole parts, so ``monkey`` or
# ``tokenizer`` are not.
SECRET_WORDS = frozenset({"token", "password", "passwd", "secret", "key", "apikey"})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# The userinfo of a URI: ``user:password@`` or a bare token ``TOKEN@`` after ``scheme://``.
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def is_secret_key(key: str) -> bool:
    """True when a word part of ``key`` (split at non-alphanumerics and camelCase humps) is one
    of ``SECRET_WORDS``: ``aws_secret_access_key``, ``API_KEY``, ``authToken`` yes; ``monkey``,
    ``keys``, ``tokenizer`` no."""
    return any(part.lower() in SECRET_WORDS for part in _WORD_SPLIT.split(str(key)) if part)


def redact_uri(text: str) -> str:
    """``text`` with the credentials of every URI in it (``user:password@``, ``TOKEN@``)
    replaced by ``***@``."""
    return _USERINFO.sub(f"{REDACTED}@", text) if "://" in text else text


def has_credentials(uri: str) -> bool:
    return redact_uri(uri) != uri


def redact(items: Mapping[str, Any]) -> dict[str, Any]:
    """Params or tags safe to log: values of secret-looking keys become ``***`` and
    ``user:password@`` in URLs becomes ``***@``."""
    out: dict[str, Any] = {}
    for key, value in items.items():
        if is_secret_key(key):
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = redact_uri(value)
        else:
            out[key] = value
    return out


def redacted(data: Any) -> Any:
    """``data`` (nested mappings and lists, as written to an artifact or a state file) with
    ``redact``'s rules applied at every level."""
    if isinstance(data, Mapping):
        return {k: REDACTED if is_secret_key(str(k)) and isinstance(v, (str, int, float))
                and v not in ("", None) else redacted(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redacted(v) for v in data]
    return redact_uri(data) if isinstance(data, str) else data

"""The project's one client for OpenAI-compatible endpoints (chat completions and completions).

Used by the OpenAI function-calling agent, the tool server's LLM simulator and the ToolEval judge:
one place for keys (rotated over a pool, sent as ``Authorization: Bearer``, never logged), retries
with exponential backoff and jitter on timeouts, connection errors, 408/409/429 and 5xx (honouring
``Retry-After``), and redaction of keys and URL credentials from every message it produces.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)

_USERINFO = re.compile(r"(//)[^/@\s]+@")


class _HideUrlCredentials(logging.Filter):
    """httpx logs every request URL at INFO, ``user:password@`` included: drop the credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _USERINFO.sub(r"\1", str(a)) if "@" in str(a) and "//" in str(a) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideUrlCredentials())

#: HTTP statuses worth another attempt; any other non-200 answer is a refusal.
RETRY_STATUSES = frozenset({408, 409, 429})


class EndpointUnavailable(RuntimeError):
    """The endpoint refused the request (4xx) or kept failing after every retry."""


def public_url(url: str) -> str:
    """``url`` without ``user:password@``, query or fragment: safe for logs and result files."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return urlunsplit((parts.scheme, (parts.hostname or "") + port, parts.path, "", ""))


def url_secrets(url: str) -> list[str]:
    """The credentials embedded in ``url`` (password, and a user name long enough to be one), to be
    redacted from any text; a one- or two-letter user name would mangle every message instead."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return [s for s in (parts.password, parts.username) if s and (s == parts.password or len(s) > 2)]


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so a key containing another goes whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class ChatClient:
    """POSTs JSON to ``<base_url>/<path>``; thread-safe; ``requests`` counts every attempt sent."""

    def __init__(
        self,
        base_url: str,
        api_keys: Sequence[str] | str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        http_client: httpx.Client | None = None,
        name: str = "endpoint",
    ):
        keys = [api_keys] if isinstance(api_keys, str) else list(api_keys or [])
        self._keys = [k for k in keys if k]
        self._secrets = self._keys + url_secrets(base_url)
        self.base_url = base_url.rstrip("/")
        self.public_url = public_url(self.base_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.name = name
        self._http = http_client or httpx.Client(timeout=timeout)
        self._cycle = itertools.cycle(self._keys) if self._keys else None
        self._lock = threading.Lock()
        self.requests = 0

    def __repr__(self) -> str:  # never shows a key or URL credentials
        key = "set" if self._keys else "unset"
        return f"{type(self).__name__}(url={self.public_url!r}, key={key})"

    @property
    def has_key(self) -> bool:
        return bool(self._keys)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._cycle is not None:
            with self._lock:
                headers["Authorization"] = f"Bearer {next(self._cycle)}"
        return headers

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2**attempt) * (0.5 + random.random())
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(delay, self.max_backoff))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """The parsed JSON of a 200 answer (``None`` when its body is not JSON).

        Raises :class:`EndpointUnavailable` on a refusal or when every retry failed; the message is one
        line, names the endpoint without credentials and never contains a key.
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            with self._lock:
                self.requests += 1
            try:
                resp = self._http.post(url, json=body, headers=self._headers(), timeout=self.timeout)
            except httpx.TimeoutException:
                error = f"timed out after {self.timeout:g} s"
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {self.redact(str(e))[:200]}"
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except (ValueError, RecursionError):
                        return None
                error = f"HTTP {resp.status_code}: {self.redact(resp.text[:300])}".replace("\n", " ")
                if resp.status_code not in RETRY_STATUSES and resp.status_code < 500:
                    raise EndpointUnavailable(
                        f"{self.name} at {self.public_url} refused the request: {error}"
                    )
                retry_after = resp.headers.get("retry-after")
            if attempt < self.max_retries:
                log.info("%s attempt %d failed (%s); retrying", self.name, attempt + 1, error)
                self._wait(attempt, retry_after)
        raise EndpointUnavailable(
            f"{self.name} at {self.public_url} failed {self.max_retries + 1} times; last: {error}"
        )

    def chat(self, messages: list[dict[str, Any]], model: str, **params: Any) -> Any:
        """The body of one ``/chat/completions`` answer (``None`` when it is not JSON)."""
        return self.post("chat/completions", {"model": model, "messages": messages, **params})

    def completions(self, prompt: str | list[str], model: str, **params: Any) -> Any:
        """The body of one ``/completions`` answer (``None`` when it is not JSON)."""
        return self.post("completions", {"model": model, "prompt": prompt, **params})


def message_of(body: Any) -> dict[str, Any] | None:
    """``choices[0].message`` of a chat-completions body when it is an object, else None."""
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None
    return message if isinstance(message, dict) else None


def content_of(body: Any) -> str | None:
    """``choices[0].message.content`` of a chat-completions body when it is a string, else None."""
    message = message_of(body)
    content = message.get("content") if message is not None else None
    return content if isinstance(content, str) else None

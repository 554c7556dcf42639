"""The tool environment (DESIGN §4.2): ``step(action, action_input) -> (observation, status)``.

Backends speak ToolBench's payload ``{category, tool_name, api_name, tool_input, strip, toolbench_key}``
→ ``{"error", "response"}``: ``toolbench`` is ToolBench's RapidAPI service (URL + key from
``--toolbench_key`` or ``$TOOLBENCH_KEY``), ``server`` any compatible URL, e.g. ``alpha-umi serve-tools``.
The key travels only in the request; it is never logged, printed or written to a file.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from glpft.chat import public_url, redact, url_secrets
from glpft.parsing import ABSENT, FINISH_NAME, GIVE_ANSWER, GIVE_UP_RETURN, parse_finish
from glpft.prompts import OBSERVATION_STYLES, as_text, observation_text
from toolbench_multillm.tools import Api, Toolset

logger = logging.getLogger(__name__)

# Status codes of a step (ToolBench's, DESIGN §4.2).
OK = 0
NO_SUCH_FUNCTION = 1
BAD_INPUT = 2
FINAL_ANSWER = 3
GAVE_UP = 4
TIMEOUT = 5
NOT_FOUND = 6
NOT_SUBSCRIBED = 7
UNAUTHORIZED = 8
TOO_MANY_REQUESTS = 9
RATE_LIMITED = 10
ERROR_FIELD = 11
REQUEST_FAILED = 12

#: Error strings of the ToolBench service → status. fixes: the original swapped 7 and 8 against its
#: own documented meaning ("7 not subscribed, 8 unauthorized"); DESIGN's meaning is used here.
SERVICE_ERRORS = {
    "API not working error...": NOT_FOUND,
    "Unsubscribed error...": NOT_SUBSCRIBED,
    "Unauthorized error...": UNAUTHORIZED,
    "Too many requests error...": TOO_MANY_REQUESTS,
    "Rate limit per minute error...": RATE_LIMITED,
    "Message error...": ERROR_FIELD,
}

#: The original's (hard-coded, now dead) ToolBench service; override with --service_url.
DEFAULT_TOOLBENCH_URL = "http://8.218.239.54:8080/rapidapi"
DEFAULT_SERVER_URL = "http://127.0.0.1:8080/rapidapi"
KEY_ENV = "TOOLBENCH_KEY"
#: Overrides the (dead) default ToolBench service URL, e.g. for the original scripts run verbatim.
SERVICE_URL_ENV = "TOOLBENCH_SERVICE_URL"
BACKENDS = ("toolbench", "server")
#: How observations are written into the agents' prompts (glpft.prompts.observation_text).
OBSERVATION_FORMATS = OBSERVATION_STYLES


class RateLimiter:
    """At most ``per_minute`` calls per minute from this process (evenly spaced), shared by threads."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval and not self._next:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Hold every later call back by ``seconds`` (the service said the per-minute limit was hit)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def process_rate_limiter(url: str, per_minute: float | None) -> RateLimiter:
    """The one limiter of this process for ``url`` (created with the first caller's rate)."""
    with _LIMITERS_LOCK:
        if url not in _LIMITERS:
            _LIMITERS[url] = RateLimiter(per_minute)
        return _LIMITERS[url]


class ToolCallError(Exception):
    """A tool request that produced no ``{"error", "response"}`` answer; ``status`` is the step status.

    ``infrastructure`` is true when the backend itself failed (unreachable, timeouts, 5xx or 429 after
    every retry, refused credentials, a reply that is not ToolBench's JSON) rather than the call.
    """

    def __init__(self, status: int, message: str, infrastructure: bool = True):
        super().__init__(message)
        self.status = status
        self.infrastructure = infrastructure


class ToolBackendError(RuntimeError):
    """The tool backend failed during a query: whatever the agent did next would rest on it."""

    def __init__(self, url: str, error: ToolCallError):
        super().__init__(f"tool backend {public_url(url)} failed: {error}")
        self.status = error.status


#: Sources a reply may name (the project's tool server adds ``"source"``; other services do not), besides
#: ``simulated:<format>:<model>`` (toolbench_multillm.sources); the last three are older servers' names.
SOURCES = ("registered", "cache-real", "upstream", "none", "local", "cache", "simulator")


class ToolClient:
    """POSTs ToolBench payloads to one URL with timeouts, retries with backoff (429/5xx, connection
    errors) and the per-process rate limit. Shared (not copied) when an environment is deep-copied."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        rate_per_minute: float | None = None,
        http_client: httpx.Client | None = None,
    ):
        self.url = url
        self._key = key or ""
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.limiter = process_rate_limiter(url, rate_per_minute)
        self._http = http_client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def __repr__(self) -> str:  # never shows the key
        return f"ToolClient(url={public_url(self.url)!r}, key={'set' if self._key else 'unset'})"

    def __deepcopy__(self, memo: dict) -> ToolClient:
        return self

    @property
    def has_key(self) -> bool:
        return bool(self._key)

    def payload(
        self, category: str, tool_name: str, api_name: str, tool_input: Any, strip: str
    ) -> dict[str, Any]:
        return {
            "category": category,
            "tool_name": tool_name,
            "api_name": api_name,
            "tool_input": tool_input,
            "strip": strip,
            "toolbench_key": self._key,
        }

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        return min(self.backoff * 2**attempt, self.max_backoff)

    def post(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The service's answer ``{"error": str, "response": str}``, or :class:`ToolCallError`."""
        headers = {"toolbench_key": self._key} if self._key else {}
        secrets = [self._key, str(payload.get("toolbench_key") or ""), *url_secrets(self.url)]
        try:
            body = json.dumps(dict(payload), allow_nan=False).encode("utf-8")
        except (ValueError, TypeError, RecursionError, UnicodeEncodeError) as e:
            # the call itself cannot be sent (NaN, a lone surrogate, a value that is not JSON)
            raise ToolCallError(BAD_INPUT, f"tool input cannot be sent: {type(e).__name__}", False) from None
        headers["content-type"] = "application/json"
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            last = attempt == self.max_retries
            try:
                response = self._http.post(self.url, content=body, headers=headers)
            except httpx.TimeoutException:
                if last:
                    raise ToolCallError(TIMEOUT, "request time out") from None
                logger.info("tool request timed out; retry %d", attempt + 1)
                continue
            except httpx.HTTPError as e:
                if last:
                    raise ToolCallError(REQUEST_FAILED, f"request failed: {type(e).__name__}") from None
                logger.info("tool request failed (%s); retry %d", type(e).__name__, attempt + 1)
                time.sleep(self._delay(attempt, None))
                continue
            code = response.status_code
            if (code == 429 or code >= 500) and not last:
                logger.info("tool service answered %d; retry %d", code, attempt + 1)
                time.sleep(self._delay(attempt, response))
                continue
            if code != 200:
                reason = redact(_error_of(response), secrets)
                status = {404: NOT_FOUND, 429: TOO_MANY_REQUESTS}.get(code, REQUEST_FAILED)
                # a refused or failing backend is infrastructure; a 4xx about this call is the call's answer
                infra = code >= 500 or code in (401, 403, 407, 429)
                raise ToolCallError(
                    status,
                    f"request invalid, data error. status_code={code}" + (f": {reason}" if reason else ""),
                    infrastructure=infra,
                )
            try:
                data = response.json()
            except (ValueError, RecursionError):
                raise ToolCallError(REQUEST_FAILED, "request invalid, data error") from None
            if not isinstance(data, dict) or "response" not in data:
                raise ToolCallError(REQUEST_FAILED, "request invalid, data error")
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._http.close()


def _error_of(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict):
            return str(data.get("error") or data.get("detail") or "")[:200]
    except (ValueError, RecursionError):
        return response.text[:200]
    return ""


def _status_of(error: Any) -> int:
    if not error:
        return OK
    if isinstance(error, str):
        if error in SERVICE_ERRORS:
            return SERVICE_ERRORS[error]
        if error.startswith("Timeout error"):
            return TIMEOUT
    return ERROR_FIELD


#: What a step does when the tool backend itself fails (ToolCallError.infrastructure).
BACKEND_ERROR_POLICIES = ("stop", "observe")


class ToolEnv:
    """One query's environment. ``step`` returns ToolBench's status codes; ``success`` and
    ``final_answer`` are set once Finish gives an answer. Deep copies share the HTTP client.

    ``last_source`` says where the last observation came from: a reply's ``source`` (the project's
    tool server: local/cache/upstream/simulator/none), ``upstream`` for a service that does not say,
    ``error`` for a failed request, ``environment`` for Finish and unknown names. When the backend
    itself fails, ``on_backend_error="stop"`` (default) raises :class:`ToolBackendError` — an answer
    resting on a dead backend is not an answer; ``"observe"`` returns the failure as an observation,
    as the original did.
    """

    def __init__(
        self,
        toolset: Toolset,
        client: ToolClient,
        max_observation_length: int = 1024,
        observ_compress_method: str = "truncate",
        observation_format: str = "alpha_umi",
        on_backend_error: str = "stop",
    ):
        if observation_format not in OBSERVATION_FORMATS:
            raise ValueError(
                f"observation_format must be one of {OBSERVATION_FORMATS}, not {observation_format!r}"
            )
        if on_backend_error not in BACKEND_ERROR_POLICIES:
            raise ValueError(f"on_backend_error must be one of {BACKEND_ERROR_POLICIES}")
        self.toolset = toolset
        self.client = client
        self.max_observation_length = max_observation_length
        self.observ_compress_method = observ_compress_method
        self.observation_format = observation_format
        self.on_backend_error = on_backend_error
        self.success = 0
        self.final_answer: str | None = None
        self.last_source = ""

    @property
    def functions(self) -> list[dict[str, Any]]:
        """OpenAI function schemas, Finish last."""
        return self.toolset.functions

    @property
    def prompt_tools(self) -> list[dict[str, Any]]:
        """α-UMi prompt tool entries (no Finish): the ``{doc}`` of the role templates."""
        return self.toolset.prompt_tools

    def check_success(self) -> int:
        return self.success

    def __deepcopy__(self, memo: dict) -> ToolEnv:
        clone = copy.copy(self)  # toolset and client are shared; only the small state is per copy
        memo[id(self)] = clone
        return clone

    def step(self, action: str, action_input: Any = "") -> tuple[str, int]:
        """(observation, status) of one action; the observation is cut to ``max_observation_length`` + "..."."""
        observation, status = self._step(action, action_input)
        if len(observation) > self.max_observation_length:
            observation = observation[: self.max_observation_length] + "..."
        return observation, status

    def _step(self, action: str, action_input: Any) -> tuple[str, int]:
        self.last_source = "environment"
        action = action.strip() if isinstance(action, str) else ""
        if action == FINISH_NAME:
            return self._finish(action_input)
        # fixes: the original matched ``name.endswith(action)``, so an empty or partial name called a
        # wrong API and hid the hallucination; only an exact function name is accepted.
        api = self.toolset.by_name.get(action)
        if api is None:
            return json.dumps({"error": f"No such function name: {action}", "response": ""}), NO_SUCH_FUNCTION
        return self.call(api, action_input)

    def _finish(self, action_input: Any) -> tuple[str, int]:
        call = parse_finish(action_input, fallback="env")
        if call.return_type is ABSENT:
            return '{error:"must have "return_type""}', BAD_INPUT
        if call.return_type == GIVE_UP_RETURN:
            return '{"response":"chose to give up and restart"}', GAVE_UP
        if call.return_type == GIVE_ANSWER:
            if call.final_answer is ABSENT:
                return '{error:"must have "final_answer""}', BAD_INPUT
            self.success = 1
            self.final_answer = as_text(call.final_answer)
            return '{"response":"successfully giving the final answer."}', FINAL_ANSWER
        # fixes: the original built this message but returned nothing (the caller crashed on None).
        return '{error:""return_type" is not a valid choice"}', BAD_INPUT

    def call(self, api: Api, action_input: Any) -> tuple[str, int]:
        """Send one API call to the backend and turn the answer into (observation, status)."""
        tool_input = action_input if isinstance(action_input, str) else json.dumps(action_input)
        payload = self.client.payload(
            api.category, api.tool_name, api.api_name, tool_input, self.observ_compress_method
        )
        try:
            data = self.client.post(payload)
        except ToolCallError as e:
            self.last_source = "error"
            if e.infrastructure and self.on_backend_error == "stop":
                raise ToolBackendError(self.client.url, e) from None
            return json.dumps({"error": str(e), "response": ""}), e.status
        source = data.get("source")
        self.last_source = (
            source
            if source in SOURCES
            or (isinstance(source, str) and source.startswith("simulated:") and len(source) <= 200)
            else "upstream"
        )
        # The reply's values as received: a JSON object or list response is encoded exactly once
        # (fixes: it used to be turned into text here and JSON-encoded again in the observation).
        error, response = data.get("error", ""), data.get("response", "")
        status = _status_of(error)
        if status == RATE_LIMITED:
            self.client.limiter.pause(10.0)  # the original slept 10 s here
        return observation_text(response, error, self.observation_format), status


# --- command-line wiring (used by run-queries) -------------------------------------------------


def add_env_args(parser: argparse.ArgumentParser) -> None:
    """The environment's flags (the paper's names where it had them)."""
    g = parser.add_argument_group("tool environment")
    g.add_argument(
        "--backend", choices=BACKENDS, default="toolbench", help="ToolBench's service or a compatible server"
    )
    g.add_argument(
        "--service_url",
        default=None,
        help=f"default: ${SERVICE_URL_ENV} or {DEFAULT_TOOLBENCH_URL} (toolbench), {DEFAULT_SERVER_URL} (server)",
    )
    g.add_argument(
        "--toolbench_key", default=None, help=f"ToolBench key (default: ${KEY_ENV}); never written anywhere"
    )
    g.add_argument("--max_observation_length", type=int, default=1024)
    g.add_argument("--observ_compress_method", default="truncate", help="sent as the payload's 'strip'")
    g.add_argument("--observation_format", choices=OBSERVATION_FORMATS, default="alpha_umi")
    g.add_argument("--tool_timeout", type=float, default=30.0, help="seconds per tool request")
    g.add_argument(
        "--tool_retries", type=int, default=3, help="retries on 429/5xx/timeouts/connection errors"
    )
    g.add_argument(
        "--on_backend_error",
        choices=BACKEND_ERROR_POLICIES,
        default="stop",
        help="stop: a query whose tool backend failed is not answered (redone on rerun); "
        "observe: the failure becomes an observation (the original's behaviour)",
    )
    g.add_argument(
        "--rate_limit",
        type=float,
        default=None,
        help="tool calls per minute per process (default: 30 for toolbench, none for server)",
    )


def resolve_key(key: str | None) -> str | None:
    """The ToolBench key from the flag, else ``$TOOLBENCH_KEY``."""
    return key or os.environ.get(KEY_ENV) or None


def make_client(
    backend: str = "server",
    url: str | None = None,
    key: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    rate_per_minute: float | None = None,
    http_client: httpx.Client | None = None,
) -> ToolClient:
    """A client for ``backend``; the toolbench backend needs a key and defaults to 30 calls per minute."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    key = resolve_key(key)
    if backend == "toolbench":
        if not key:
            raise ValueError(f"the toolbench backend needs a key: pass --toolbench_key or set ${KEY_ENV}")
        url = url or os.environ.get(SERVICE_URL_ENV) or DEFAULT_TOOLBENCH_URL
        rate_per_minute = 30.0 if rate_per_minute is None else rate_per_minute
    else:
        url = url or DEFAULT_SERVER_URL
    return ToolClient(
        url,
        key,
        timeout=timeout,
        max_retries=retries,
        rate_per_minute=rate_per_minute,
        http_client=http_client,
    )


def client_from_args(args: argparse.Namespace) -> ToolClient:
    return make_client(
        args.backend,
        args.service_url,
        args.toolbench_key,
        args.tool_timeout,
        args.tool_retries,
        args.rate_limit,
    )


def env_from_args(toolset: Toolset, client: ToolClient, args: argparse.Namespace) -> ToolEnv:
    return ToolEnv(
        toolset,
        client,
        args.max_observation_length,
        args.observ_compress_method,
        args.observation_format,
        args.on_backend_error,
    )

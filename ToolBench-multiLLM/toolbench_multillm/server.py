"""A local, reproducible RapidAPI stand-in speaking ToolBench's payload (FastAPI + uvicorn).

    alpha-umi tools build-cache --answers data/toolbench/answer --cache tool_cache.sqlite
    alpha-umi serve-tools --cache tool_cache.sqlite --host 127.0.0.1 --port 8080 \
        [--upstream_url URL] [--simulator_base_url http://127.0.0.1:8000/v1 --simulator_model NAME] \
        [--tool_root_dir data/toolenv/tools]

POST ``/rapidapi`` and ``/virtual`` take ``{category, tool_name, api_name, tool_input, strip,
toolbench_key}`` and answer ``{"error", "response", "source"}``. Lookup order: registered in-process Python tools,
the SQLite cache, the upstream ToolBench service (real answers are cached), an LLM simulator at an
OpenAI-compatible URL (StableToolBench's idea; validated JSON is cached), else ``{"error": "no cached
response …"}``. ``GET /health`` and ``GET /stats`` report state. The server never imports or runs code
named by a request: a request only selects among functions registered by the operator
(:mod:`toolbench_multillm.registry`). The simulator and its tool docs live in :mod:`toolbench_multillm.simulator`.

Provenance: every answer of a call (200, and the 404 of an unknown tool) carries ``"source"``, one of
``"local"`` (a registered tool), ``"cache"``, ``"upstream"``, ``"simulator"`` or ``"none"`` (no backend
could answer: the "no cached response …" and unknown-tool answers). Clients that read only ``error`` and
``response`` are unaffected. A refused request (400, 413) is ``{"error": <one-line reason>, "response": ""}``.

Robustness: whatever a client sends gets a 2xx or 4xx, never a 5xx or a dropped keep-alive connection.
Bodies over ``--max_body_bytes`` get 413; bodies that are not a JSON object, nested too deeply, hold
integers with too many digits, fields of the wrong type, lone surrogates (not valid Unicode) or a
``tool_input`` nested deeper than :data:`MAX_INPUT_DEPTH` get 400 naming the field. Whatever an upstream or
the simulator answers (not JSON, nested too deeply, huge, wrong types, lone surrogates) is either
served as text (surrogates → U+FFFD, cut to :data:`MAX_RESPONSE_CHARS`) or treated as that backend
failing. Keys (the request's ``toolbench_key``, the server's own, URL credentials) are redacted from
every logged line and every answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
import traceback
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from glpft.chat import public_url, redact, url_secrets
from glpft.formats import FormatError, loads_json
from toolbench_multillm.cache import ResponseCache, cache_key
from toolbench_multillm.env import KEY_ENV, ToolCallError, ToolClient, resolve_key
from toolbench_multillm.registry import ToolRegistry
from toolbench_multillm.simulator import SIMULATOR_EXAMPLES, Simulator, load_tool_docs

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
#: A body larger than this is not even drained before answering 413 (the connection is dropped).
_DRAIN_LIMIT = 64 << 20
MAX_NAME_LENGTH = 256
#: Deepest nesting accepted in a ``tool_input`` (ToolBench inputs are flat objects).
MAX_INPUT_DEPTH = 32
#: Longest error or response text served from a local tool, an upstream or the simulator ("..." past it).
MAX_RESPONSE_CHARS = 1 << 20
#: Where an answer came from (the ``source`` field of every answer of a call).
SOURCES = ("local", "cache", "upstream", "simulator", "none")

_SURROGATE = re.compile("[\ud800-\udfff]")


class BadRequest(Exception):
    """A request the server refuses: the HTTP status and a one-line reason (sent as the ``error``)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def validate_name(value: Any, field_name: str, required: bool = True) -> str:
    """A category/tool/API name, or :class:`BadRequest` naming the field and why."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadRequest(400, f"field '{field_name}' must be a string")
    if value == "" and not required:
        return ""
    if not value or len(value) > MAX_NAME_LENGTH:
        raise BadRequest(400, f"field '{field_name}' must have 1-{MAX_NAME_LENGTH} characters")
    if ".." in value or "/" in value or "\\" in value or value.startswith("."):
        raise BadRequest(
            400,
            f"field '{field_name}' is not a valid name (path-like names are rejected; send standardised names)",
        )
    if _SURROGATE.search(value):
        raise BadRequest(400, f"field '{field_name}' contains a lone surrogate (not valid Unicode)")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise BadRequest(400, f"field '{field_name}' contains control characters")
    return value


def validate_tool_input(value: Any) -> Any:
    """A ``tool_input``: a JSON object or text (text that is not JSON is kept: it is keyed and forwarded
    as written), or :class:`BadRequest` when it is nested too deeply, holds a huge integer or is not
    valid Unicode."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise BadRequest(400, "field 'tool_input' contains a lone surrogate (not valid Unicode)")
        try:
            parsed = json.loads(value, strict=False)
        except RecursionError:
            raise BadRequest(
                400, f"field 'tool_input' is nested deeper than {MAX_INPUT_DEPTH} levels"
            ) from None
        except json.JSONDecodeError:
            return value
        except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
            raise BadRequest(400, "field 'tool_input' holds an integer with too many digits") from None
        _check_json_value(parsed, "tool_input")
        return value
    if isinstance(value, dict):
        _check_json_value(value, "tool_input")
        return value
    raise BadRequest(400, "field 'tool_input' must be a JSON string or object")


def _check_json_value(value: Any, field_name: str) -> None:
    """:class:`BadRequest` when a parsed JSON value nests deeper than MAX_INPUT_DEPTH or holds a lone
    surrogate (iterative: a hostile value cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise BadRequest(400, f"field '{field_name}' contains a lone surrogate (not valid Unicode)")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_INPUT_DEPTH:
            raise BadRequest(400, f"field '{field_name}' is nested deeper than {MAX_INPUT_DEPTH} levels")
        children = list(node.values()) + list(node) if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)


# --- the app -----------------------------------------------------------------------------------


class Stats:
    """Thread-safe request counters behind ``GET /stats`` (hits, misses, bad requests, answers by source)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    def add(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self.counts[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            c = dict(self.counts)
        sources = ("local", "cache", "upstream", "simulator", "none")
        return {
            "requests": c.get("requests", 0),
            "hits": c.get("hits", 0),
            "misses": c.get("misses", 0),
            "bad_requests": c.get("bad_requests", 0),
            "by_source": {s: c.get("source:" + s, 0) for s in sources},
        }


@dataclass
class ServerConfig:
    cache: ResponseCache
    registry: ToolRegistry = field(default_factory=ToolRegistry)
    upstream: ToolClient | None = None
    simulator: Simulator | None = None
    tool_docs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    max_body_bytes: int = MAX_BODY_BYTES
    max_response_chars: int = MAX_RESPONSE_CHARS

    def secrets(self, payload: dict[str, Any] | None = None) -> list[str]:
        """What must never be logged or answered: the server's upstream key and URL credentials, and the
        request's own ``toolbench_key``."""
        found = [payload.get("toolbench_key", "")] if payload else []
        if self.upstream is not None:
            found += [
                self.upstream.payload("", "", "", "", "")["toolbench_key"],
                *url_secrets(self.upstream.url),
            ]
        return [s for s in found if isinstance(s, str) and s]


async def _read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON; 413 past ``limit`` bytes (the body is drained, up to a bound)."""
    length = request.headers.get("content-length")
    too_big = length is not None and length.isdigit() and int(length) > limit
    body = bytearray()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                too_big = True
            if too_big:
                if received > _DRAIN_LIMIT:
                    break
                continue
            body += chunk
    except ClientDisconnect:
        raise BadRequest(400, "client disconnected before the body was read") from None
    if too_big:
        raise BadRequest(413, f"request body larger than {limit} bytes")
    try:  # syntax, deep nesting, huge integers and undecodable bytes are all one-line errors
        return loads_json(bytes(body), "invalid JSON body")
    except FormatError as e:
        raise BadRequest(400, str(e)) from None


def _optional_text(data: dict[str, Any], field_name: str) -> str:
    """``strip`` or ``toolbench_key``: a string, anything else is ignored (as ToolBench's service does)."""
    value = data.get(field_name)
    if not isinstance(value, str):
        return ""
    if _SURROGATE.search(value):
        raise BadRequest(400, f"field '{field_name}' contains a lone surrogate (not valid Unicode)")
    return value


def _validate_payload(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object")
    return {
        "category": validate_name(data.get("category"), "category", required=False),
        "tool_name": validate_name(data.get("tool_name"), "tool_name"),
        "api_name": validate_name(data.get("api_name"), "api_name"),
        "tool_input": validate_tool_input(data.get("tool_input", "{}")),
        "strip": _optional_text(data, "strip"),
        "toolbench_key": _optional_text(data, "toolbench_key"),
    }


class Unusable(Exception):
    """A backend's reply that cannot be served (a value with no JSON text)."""


def _served_text(value: Any, secrets: list[str], limit: int, empty_if_falsy: bool = False) -> str:
    """A reply field as served and cached: text (other values JSON-encoded), keys redacted, lone
    surrogates → U+FFFD, cut to ``limit`` characters + "..."; :class:`Unusable` when it has no JSON text."""
    if empty_if_falsy and not value:
        return ""
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError) as e:
            raise Unusable(f"a value with no JSON text ({type(e).__name__})") from None
    value = _SURROGATE.sub("\ufffd", redact(value, secrets))
    return value[:limit] + "..." if len(value) > limit else value


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def lookup(
    config: ServerConfig, payload: dict[str, Any], stats: Stats, cache_checked: bool = False
) -> tuple[int, dict[str, str]]:
    """(HTTP status, answer with its ``source``) of one validated call, trying each source in order
    (blocking: run in a thread). Never raises for anything a backend returns."""
    tool, api, category, tool_input = (
        payload["tool_name"],
        payload["api_name"],
        payload["category"],
        payload["tool_input"],
    )
    secrets, limit = config.secrets(payload), config.max_response_chars
    local = config.registry.get(tool, api)
    if local is not None:
        error, response = ToolRegistry.call(local, tool_input)
        stats.add("hits", "source:local")
        try:
            answer = _served_text(error, [], limit), _served_text(response, [], limit)
        except Unusable as e:
            answer = f"tool result unusable: {e}", ""
        return 200, {"error": answer[0], "response": answer[1], "source": "local"}
    hit = None if cache_checked else config.cache.get(tool, api, tool_input, category)
    if hit is not None:
        stats.add("hits", "source:cache")
        return 200, {"error": hit.error, "response": hit.response, "source": "cache"}
    stats.add("misses")
    upstream_failure = ""
    if config.upstream is not None:
        # the server's own key wins; without one, the request's key is forwarded
        if config.upstream.has_key:
            upstream_payload = config.upstream.payload(category, tool, api, tool_input, payload["strip"])
        else:
            upstream_payload = dict(payload)
        try:
            data = config.upstream.post(upstream_payload)
            if not isinstance(data, dict):
                raise Unusable(f"a JSON {type(data).__name__}, not an object")
            error = _served_text(data.get("error"), secrets, limit, empty_if_falsy=True)
            response = _served_text(data.get("response", ""), secrets, limit)
        except ToolCallError as e:
            upstream_failure = _one_line(redact(str(e), secrets))
        except Unusable as e:
            upstream_failure = f"unusable reply: {e}"
        except Exception as e:  # the client must not turn whatever the upstream sends into a 500
            upstream_failure = _one_line(f"{type(e).__name__}: {redact(str(e), secrets)}")
        else:
            if not error:
                config.cache.put(tool, api, tool_input, error, response, "upstream", category)
            stats.add("source:upstream")
            return 200, {"error": error, "response": response, "source": "upstream"}
        logger.info(
            "upstream %s failed for %s/%s: %s", public_url(config.upstream.url), tool, api, upstream_failure
        )
    known = config.cache.knows(tool, api) or cache_key(tool, api) in config.tool_docs
    if config.simulator is not None and known:
        doc = config.tool_docs.get(cache_key(tool, api))
        try:
            simulated = config.simulator.simulate(
                payload, doc, config.cache.examples(tool, api, SIMULATOR_EXAMPLES)
            )
            if simulated is not None:
                simulated = (
                    _served_text(simulated[0], secrets, limit),
                    _served_text(simulated[1], secrets, limit),
                )
        except Exception as e:  # Simulator.simulate never raises; another simulator object might
            logger.warning("simulator failed for %s/%s: %s", tool, api, _one_line(redact(repr(e), secrets)))
            simulated = None
        if simulated is not None:
            config.cache.put(tool, api, tool_input, simulated[0], simulated[1], "simulator", category)
            stats.add("source:simulator")
            return 200, {"error": simulated[0], "response": simulated[1], "source": "simulator"}
    stats.add("source:none")
    if not known and config.upstream is None and not config.registry.knows_tool(tool):
        return 404, {"error": f"unknown tool or API: {tool}/{api}", "response": "", "source": "none"}
    error = f"no cached response for {tool}/{api} with this input"
    if upstream_failure:
        error += f"; upstream failed: {upstream_failure}"
    return 200, {"error": error, "response": "", "source": "none"}


def create_app(config: ServerConfig) -> FastAPI:
    """The tool server app around one configuration (tests use it with FastAPI's TestClient)."""
    app = FastAPI(title="alpha-umi tool server", docs_url=None, redoc_url=None, openapi_url=None)
    stats = Stats()
    app.state.config = config
    app.state.stats = stats

    def internal_error(where: str, exc: BaseException, secrets: list[str]) -> JSONResponse:
        """A defect of ours: logged (keys redacted) and answered 500 from inside the route, so that
        the connection stays open (an exception leaving the app makes uvicorn drop it)."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        logger.error("internal error on %s: %s", where, redact(text, secrets))
        return JSONResponse(
            {"error": f"internal error: {type(exc).__name__}", "response": ""}, status_code=500
        )

    async def call(request: Request) -> JSONResponse:
        stats.add("requests")
        try:
            payload = _validate_payload(await _read_json(request, config.max_body_bytes))
        except BadRequest as e:
            stats.add("bad_requests")
            return JSONResponse({"error": str(e), "response": ""}, status_code=e.status)
        except Exception as e:  # a defect of ours, never the client's input
            return internal_error(request.url.path, e, config.secrets())
        try:
            checked = len(config.registry) == 0
            if checked:  # cache hits are answered on the event loop: no thread hop
                hit = config.cache.get(
                    payload["tool_name"], payload["api_name"], payload["tool_input"], payload["category"]
                )
                if hit is not None:
                    stats.add("hits", "source:cache")
                    return JSONResponse({"error": hit.error, "response": hit.response, "source": "cache"})
            status, answer = await run_in_threadpool(lookup, config, payload, stats, checked)
            return JSONResponse(answer, status_code=status)
        except Exception as e:
            return internal_error(request.url.path, e, config.secrets(payload))

    app.add_api_route("/rapidapi", call, methods=["POST"])
    app.add_api_route("/virtual", call, methods=["POST"])

    @app.get("/health")
    def health() -> JSONResponse:
        try:
            entries = len(config.cache)
        except Exception as e:  # a broken cache file is the server's state, reported, not a crash
            logger.error("health: cache unreadable (%s)", type(e).__name__)
            return JSONResponse({"status": "cache unreadable", "local_tools": len(config.registry)}, 503)
        return JSONResponse({"status": "ok", "cache_entries": entries, "local_tools": len(config.registry)})

    @app.get("/stats")
    def get_stats() -> dict[str, Any]:
        return stats.snapshot()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # outside the routes' guards
        return internal_error(request.url.path, exc, config.secrets())

    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alpha-umi serve-tools", description="Serve ToolBench tool calls from a response cache."
    )
    p.add_argument(
        "--cache", required=True, help="SQLite cache (see `alpha-umi tools build-cache`); created if absent"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--upstream_url", default=None, help="ToolBench service for cache misses (real answers are cached)"
    )
    p.add_argument("--toolbench_key", default=None, help=f"key for --upstream_url (default: ${KEY_ENV})")
    p.add_argument(
        "--simulator_base_url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--simulator_model", default=None)
    p.add_argument(
        "--simulator_key_env",
        default="OPENAI_API_KEY",
        help="environment variable holding the simulator's key",
    )
    p.add_argument("--tool_root_dir", default=None, help="toolenv/tools: API docs for the simulator")
    p.add_argument("--max_body_bytes", type=int, default=MAX_BODY_BYTES)
    p.add_argument("--log_level", default="info")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The configuration of ``serve-tools``; a bad ``--cache`` or ``--tool_root_dir`` is a one-line
    :class:`FormatError` naming the path (raised before anything binds a port)."""
    config = ServerConfig(cache=ResponseCache(args.cache), max_body_bytes=args.max_body_bytes)
    if args.upstream_url:
        config.upstream = ToolClient(args.upstream_url, resolve_key(args.toolbench_key), rate_per_minute=None)
    if args.simulator_base_url:
        if not args.simulator_model:
            raise SystemExit("alpha-umi serve-tools: --simulator_model is required with --simulator_base_url")
        config.simulator = Simulator(
            args.simulator_base_url, args.simulator_model, os.environ.get(args.simulator_key_env)
        )
    if args.tool_root_dir:
        config.tool_docs = load_tool_docs(args.tool_root_dir)
    return config


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Run the server in this process (blocking), e.g. with Python tools registered in ``config.registry``."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, access_log=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request's URL at INFO, URL credentials (user:password@) included
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        config = config_from_args(args)
    except FormatError as e:
        print(f"alpha-umi serve-tools: {e}", file=sys.stderr)
        return 2
    logger.info(
        "serving %d cached responses on http://%s:%d (upstream: %s, simulator: %s)",
        len(config.cache),
        args.host,
        args.port,
        public_url(config.upstream.url) if config.upstream else "off",
        config.simulator or "off",
    )
    serve(config, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local, reproducible RapidAPI stand-in speaking ToolBench's payload (FastAPI + uvicorn).

    alpha-umi tools build-cache --answers data/toolbench/answer --cache tool_cache.sqlite
    alpha-umi serve-tools --cache tool_cache.sqlite --host 127.0.0.1 --port 8080 \
        [--upstream_url URL] [--simulator_base_url http://127.0.0.1:8000/v1 --simulator_model NAME] \
        [--tool_root_dir data/toolenv/tools]

POST ``/rapidapi`` and ``/virtual`` take ``{category, tool_name, api_name, tool_input, strip,
toolbench_key}`` and answer ``{"error", "response"}``. Lookup order: registered in-process Python tools,
the SQLite cache, the upstream ToolBench service (real answers are cached), an LLM simulator at an
OpenAI-compatible URL (StableToolBench's idea; validated JSON is cached), else ``{"error": "no cached
response …"}``. ``GET /health`` and ``GET /stats`` report state. The server never imports or runs code
named by a request: a request only selects among functions registered by the operator
(:mod:`toolbench_multillm.registry`). The simulator and its tool docs live in :mod:`toolbench_multillm.simulator`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from toolbench_multillm.cache import ResponseCache, cache_key
from toolbench_multillm.env import KEY_ENV, ToolCallError, ToolClient, resolve_key
from toolbench_multillm.registry import ToolRegistry
from toolbench_multillm.simulator import SIMULATOR_EXAMPLES, Simulator, load_tool_docs

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
#: A body larger than this is not even drained before answering 413 (the connection is dropped).
_DRAIN_LIMIT = 64 << 20
MAX_NAME_LENGTH = 256


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
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise BadRequest(400, f"field '{field_name}' contains control characters")
    return value


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


async def _read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON; 413 past ``limit`` bytes (the body is drained, up to a bound)."""
    length = request.headers.get("content-length")
    too_big = length is not None and length.isdigit() and int(length) > limit
    body = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            too_big = True
        if too_big:
            if received > _DRAIN_LIMIT:
                break
            continue
        body += chunk
    if too_big:
        raise BadRequest(413, f"request body larger than {limit} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(400, f"invalid JSON body: {e.msg if hasattr(e, 'msg') else e}") from None


def _validate_payload(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object")
    payload = {
        "category": validate_name(data.get("category"), "category", required=False),
        "tool_name": validate_name(data.get("tool_name"), "tool_name"),
        "api_name": validate_name(data.get("api_name"), "api_name"),
    }
    tool_input = data.get("tool_input", "{}")
    if not isinstance(tool_input, (str, dict)) and tool_input is not None:
        raise BadRequest(400, "field 'tool_input' must be a JSON string or object")
    payload["tool_input"] = tool_input if tool_input is not None else "{}"
    strip = data.get("strip", "")
    payload["strip"] = strip if isinstance(strip, str) else ""
    key = data.get("toolbench_key")
    payload["toolbench_key"] = key if isinstance(key, str) else ""
    return payload


def lookup(
    config: ServerConfig, payload: dict[str, Any], stats: Stats, cache_checked: bool = False
) -> tuple[int, dict[str, str]]:
    """(HTTP status, answer) of one validated call, trying each source in order (blocking: run in a thread)."""
    tool, api, category, tool_input = (
        payload["tool_name"],
        payload["api_name"],
        payload["category"],
        payload["tool_input"],
    )
    local = config.registry.get(tool, api)
    if local is not None:
        error, response = ToolRegistry.call(local, tool_input)
        stats.add("hits", "source:local")
        return 200, {"error": error, "response": response}
    hit = None if cache_checked else config.cache.get(tool, api, tool_input, category)
    if hit is not None:
        stats.add("hits", "source:cache")
        return 200, {"error": hit.error, "response": hit.response}
    stats.add("misses")
    if config.upstream is not None:
        # the server's own key wins; without one, the request's key is forwarded
        if config.upstream.has_key:
            upstream_payload = config.upstream.payload(category, tool, api, tool_input, payload["strip"])
        else:
            upstream_payload = dict(payload)
        try:
            data = config.upstream.post(upstream_payload)
            error, response = str(data.get("error") or ""), data.get("response", "")
            response = response if isinstance(response, str) else json.dumps(response)
            if not error:
                config.cache.put(tool, api, tool_input, error, response, "upstream", category)
            stats.add("source:upstream")
            return 200, {"error": error, "response": response}
        except ToolCallError as e:
            logger.info("upstream failed for %s/%s: %s", tool, api, e)
    known = config.cache.knows(tool, api) or cache_key(tool, api) in config.tool_docs
    if config.simulator is not None and known:
        doc = config.tool_docs.get(cache_key(tool, api))
        simulated = config.simulator.simulate(
            payload, doc, config.cache.examples(tool, api, SIMULATOR_EXAMPLES)
        )
        if simulated is not None:
            config.cache.put(tool, api, tool_input, simulated[0], simulated[1], "simulator", category)
            stats.add("source:simulator")
            return 200, {"error": simulated[0], "response": simulated[1]}
    stats.add("source:none")
    if not known and config.upstream is None and not config.registry.knows_tool(tool):
        return 404, {"error": f"unknown tool or API: {tool}/{api}", "response": ""}
    return 200, {"error": f"no cached response for {tool}/{api} with this input", "response": ""}


def create_app(config: ServerConfig) -> FastAPI:
    """The tool server app around one configuration (tests use it with FastAPI's TestClient)."""
    app = FastAPI(title="alpha-umi tool server", docs_url=None, redoc_url=None, openapi_url=None)
    stats = Stats()
    app.state.config = config
    app.state.stats = stats

    async def call(request: Request) -> JSONResponse:
        stats.add("requests")
        try:
            payload = _validate_payload(await _read_json(request, config.max_body_bytes))
        except BadRequest as e:
            stats.add("bad_requests")
            return JSONResponse({"error": str(e), "response": ""}, status_code=e.status)
        checked = len(config.registry) == 0
        if checked:  # cache hits are answered on the event loop: no thread hop
            hit = config.cache.get(
                payload["tool_name"], payload["api_name"], payload["tool_input"], payload["category"]
            )
            if hit is not None:
                stats.add("hits", "source:cache")
                return JSONResponse({"error": hit.error, "response": hit.response})
        status, answer = await run_in_threadpool(lookup, config, payload, stats, checked)
        return JSONResponse(answer, status_code=status)

    app.add_api_route("/rapidapi", call, methods=["POST"])
    app.add_api_route("/virtual", call, methods=["POST"])

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "cache_entries": len(config.cache), "local_tools": len(config.registry)}

    @app.get("/stats")
    def get_stats() -> dict[str, Any]:
        return stats.snapshot()

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s", request.url.path)
        return JSONResponse(
            {"error": f"internal error: {type(exc).__name__}", "response": ""}, status_code=500
        )

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
    config = config_from_args(args)
    logger.info(
        "serving %d cached responses on http://%s:%d (upstream: %s, simulator: %s)",
        len(config.cache),
        args.host,
        args.port,
        "on" if config.upstream else "off",
        config.simulator or "off",
    )
    serve(config, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())

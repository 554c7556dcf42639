"""A local, reproducible RapidAPI stand-in speaking ToolBench's payload (FastAPI + uvicorn).

    alpha-umi tools build-cache --answers data/toolbench/answer --cache tool_cache.sqlite
    alpha-umi serve-tools --cache tool_cache.sqlite --host 127.0.0.1 --port 8080 \
        [--stb-cache-dir server/tool_response_cache] [--upstream_url URL] \
        [--simulator_format {project,stb-gpt,mirrorapi,mirrorapi-cache} \
         --simulator_base_url http://127.0.0.1:8000/v1 --simulator_model NAME] [--tool_root_dir toolenv/tools]

POST ``/rapidapi`` and ``/virtual`` take ``{category, tool_name, api_name, tool_input, strip,
toolbench_key}`` and answer ``{"error", "response", "source"}``; a response that is a JSON object or list
is served as one (DESIGN §6). Lookup order and provenance (``source``: ``registered``, ``cache-real``,
``upstream``, ``simulated:<format>:<model>``, ``none``) are :mod:`toolbench_multillm.lookup`'s; request
validation is :mod:`toolbench_multillm.validation`'s; the simulators are
:mod:`toolbench_multillm.simulator`'s. ``GET /health`` and ``GET /stats`` (answers by source, the
simulator's format, model, temperature and seed) report state. The server never imports or runs code
named by a request: a request only selects among functions registered by the operator
(:mod:`toolbench_multillm.registry`).

StableToolBench (``--stb-cache-dir``, its simulator formats, or a cache holding its imported entries):
its ``tool_response_cache`` folder is served in place (read-only; new entries go to ``--cache``), calls
are looked up with its rules (:mod:`toolbench_multillm.stb`) and its ``check_result`` decides which real
replies are cached; ``--lookup_rules project`` keeps the project's rules instead.

Robustness: whatever a client sends gets a 2xx or 4xx, never a 5xx or a dropped keep-alive connection;
a refused request (400, 413) is ``{"error": <one-line reason>, "response": ""}``. Whatever an upstream or
the simulator answers is served safely or treated as that backend failing. Keys (the request's
``toolbench_key``, the server's own, URL credentials) are redacted from every logged line and answer.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from glpft.chat import public_url, redact
from glpft.formats import FormatError
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.env import KEY_ENV, ToolClient, resolve_key
from toolbench_multillm.lookup import (
    MAX_RESPONSE_CHARS,
    ServerConfig,
    Stats,
    cached_answer,
    lookup,
    parse_error,
    stb_call,
)
from toolbench_multillm.simulator import SIMULATOR_FORMATS, STB_FORMATS, Simulator, load_tool_docs
from toolbench_multillm.sources import FIXED_SOURCES, NO_SOURCE, is_source
from toolbench_multillm.stb import ToolDocs
from toolbench_multillm.stb_cache import StbFolder
from toolbench_multillm.validation import (
    MAX_BODY_BYTES,
    MAX_INPUT_DEPTH,
    BadRequest,
    read_body,
    validate_name,
    validate_payload,
    validate_tool_input,
)

logger = logging.getLogger(__name__)

#: The fixed sources of an answer (besides ``simulated:<format>:<model>``; see :func:`is_source`).
SOURCES = FIXED_SOURCES
__all__ = [
    "MAX_BODY_BYTES", "MAX_INPUT_DEPTH", "MAX_RESPONSE_CHARS", "SOURCES", "BadRequest", "ServerConfig",
    "create_app", "is_source", "main", "serve", "validate_name", "validate_tool_input",
]  # fmt: skip


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
            payload = validate_payload(await read_body(request, config.max_body_bytes))
        except BadRequest as e:
            stats.add("bad_requests")
            return JSONResponse({"error": str(e), "response": ""}, status_code=e.status)
        except Exception as e:  # a defect of ours, never the client's input
            return internal_error(request.url.path, e, config.secrets())
        try:
            checked, call = len(config.registry) == 0, stb_call(payload)
            if checked:  # cache hits are answered on the event loop: no thread hop
                answer = parse_error(config, call) or cached_answer(config, payload, call)
                if answer is not None:
                    hit = answer["source"] != NO_SOURCE
                    stats.add("hits" if hit else "misses", "source:" + answer["source"])
                    return JSONResponse(answer)
            status, answer = await run_in_threadpool(lookup, config, payload, stats, checked, call)
            return JSONResponse(answer, status_code=status)
        except Exception as e:
            return internal_error(request.url.path, e, config.secrets(payload))

    app.add_api_route("/rapidapi", call, methods=["POST"])
    app.add_api_route("/virtual", call, methods=["POST"])

    @app.get("/health")
    def health() -> JSONResponse:
        try:
            entries = len(config.cache) + len(config.stb)
        except Exception as e:  # a broken cache file is the server's state, reported, not a crash
            logger.error("health: cache unreadable (%s)", type(e).__name__)
            return JSONResponse({"status": "cache unreadable", "local_tools": len(config.registry)}, 503)
        return JSONResponse({"status": "ok", "cache_entries": entries, "local_tools": len(config.registry)})

    @app.get("/stats")
    def get_stats() -> dict[str, Any]:
        return stats.snapshot(config.simulator)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # outside the routes' guards
        return internal_error(request.url.path, exc, config.secrets())

    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alpha-umi serve-tools", description="Serve ToolBench tool calls from a response cache."
    )
    p.add_argument(
        "--cache",
        required=True,
        help="SQLite cache (see `alpha-umi tools build-cache`, `tools import-stb`); created if absent; "
        "new entries (upstream, simulated) are written here",
    )
    p.add_argument(
        "--stb-cache-dir",
        "--stb_cache_dir",
        dest="stb_cache_dir",
        default=None,
        help="StableToolBench's tool_response_cache folder, served in place (read-only)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--upstream_url", default=None, help="ToolBench service for cache misses (real answers are cached)"
    )
    p.add_argument("--toolbench_key", default=None, help=f"key for --upstream_url (default: ${KEY_ENV})")
    g = p.add_argument_group("simulator")
    g.add_argument("--simulator_format", choices=SIMULATOR_FORMATS, default="project")
    g.add_argument(
        "--simulator_base_url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    g.add_argument("--simulator_model", default=None)
    g.add_argument(
        "--simulator_key_env",
        default="OPENAI_API_KEY",
        help="environment variable holding the simulator's key",
    )
    g.add_argument(
        "--simulator_temperature",
        type=float,
        default=None,
        help="default: the format's (project 0, stb-gpt 0, mirrorapi 0.1)",
    )
    g.add_argument(
        "--simulator_seed", type=int, default=None, help="default: the format's (mirrorapi 42, else none)"
    )
    g.add_argument("--simulator_timeout", type=float, default=60.0, help="seconds per simulator request")
    g.add_argument(
        "--no_simulated_cache",
        action="store_true",
        help="never cache simulated answers (MirrorAPI's servers do not cache)",
    )
    p.add_argument(
        "--tool_root_dir",
        default=None,
        help="toolenv/tools: API docs for the simulator (needed by mirrorapi)",
    )
    p.add_argument(
        "--lookup_rules",
        choices=("auto", "stb", "project"),
        default="auto",
        help="stb: StableToolBench's argument rule and layout for new entries; auto: stb when a StableToolBench "
        "cache or simulator format is used",
    )
    p.add_argument("--max_body_bytes", type=int, default=MAX_BODY_BYTES)
    p.add_argument("--log_level", default="info")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The configuration of ``serve-tools``; a bad ``--cache``, ``--stb-cache-dir`` or ``--tool_root_dir``
    and missing simulator flags are a one-line :class:`FormatError` (raised before anything binds a port)."""
    config = ServerConfig(cache=ResponseCache(args.cache), max_body_bytes=args.max_body_bytes)
    fmt = args.simulator_format
    if args.stb_cache_dir:
        config.stb_folder = StbFolder(args.stb_cache_dir)
    if args.upstream_url:
        config.upstream = ToolClient(args.upstream_url, resolve_key(args.toolbench_key), rate_per_minute=None)
    if args.simulator_base_url:
        if not args.simulator_model:
            raise FormatError("--simulator_model is required with --simulator_base_url", "missing flag")
        if fmt in ("mirrorapi", "mirrorapi-cache") and not args.tool_root_dir:
            raise FormatError(f"--simulator_format {fmt} needs --tool_root_dir (its prompt is the API's doc)")
        config.simulator = Simulator(
            args.simulator_base_url,
            args.simulator_model,
            os.environ.get(args.simulator_key_env),
            timeout=args.simulator_timeout,
            format=fmt,
            temperature=args.simulator_temperature,
            seed=args.simulator_seed,
        )
        config.cache_simulated = not args.no_simulated_cache
    if args.tool_root_dir:
        if fmt in STB_FORMATS:
            config.stb_docs = ToolDocs(args.tool_root_dir)
        else:
            config.tool_docs = load_tool_docs(args.tool_root_dir)
    uses_stb = bool(args.stb_cache_dir) or (config.simulator is not None and fmt in STB_FORMATS)
    config.stb_rules = {"stb": True, "project": False}.get(args.lookup_rules, uses_stb or len(config.stb) > 0)
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
        print(f"alpha-umi serve-tools: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    sim = config.simulator
    logger.info(
        "serving %d cached responses%s on http://%s:%d (upstream: %s, simulator: %s; %s lookup rules)",
        len(config.cache) + len(config.stb),
        f" and {config.stb_folder.root} in place" if config.stb_folder else "",
        args.host,
        args.port,
        public_url(config.upstream.url) if config.upstream else "off",
        f"{sim!r} {sim.describe()}" if sim else "off",
        "StableToolBench" if config.stb_rules else "project",
    )
    serve(config, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())

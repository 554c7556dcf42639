"""An OpenAI-compatible completions server for the α-UMi roles (DESIGN §6): ``model`` = role name.

    alpha-umi serve-models --base saved_models/backbone \
        --adapter planner=saved_models/planner-lora --adapter caller=saved_models/caller-lora \
        --adapter summarizer=saved_models/summarizer-lora [--base_name backbone] --port 8000
    alpha-umi serve-models --model planner=saved_models/planner --model caller=saved_models/caller \
        --model summarizer=saved_models/summarizer --port 8000

Adapters stay unmerged on ONE base model (peft multi-adapter, switched between batches); ``--model``
loads full checkpoints (names with the same folder share one model). Models and batching live in
:mod:`glpft.model_pool`; this module is the HTTP surface and the command line.

``GET /v1/models``, ``GET /v1/models/{name}``, ``GET /health``, ``GET /stats`` (batching, prefix reuse), ``POST /v1/completions`` with OpenAI's
fields (``model``, ``prompt`` as a string or a list of strings, ``max_tokens`` 16, ``temperature`` 1.0
(0 = greedy), ``top_p``, ``n``, ``seed``, ``stop``, ``stream``) plus vLLM's ``top_k`` and
``truncate_prompt_tokens`` (an over-long prompt keeps its last k ids, BOS included in what may be cut).
The tokens are the in-process ones: ``tokenizer(prompt).input_ids``, :func:`glpft.generation.generate`,
``decode(skip_special_tokens=True)``. ``echo``, ``logprobs``, ``best_of`` > 1, ``suffix``, penalties and
``logit_bias`` are refused (400). Bad requests get a 4xx with OpenAI's ``{"error": {"message", "type",
"param", "code"}}``, never a 5xx or a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import sys
import time
import traceback
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from glpft.formats import FormatError, loads_json
from glpft.model_pool import NAME_RE, CompletionResult, ModelPool, RequestError, SamplingParams

log = logging.getLogger(__name__)

PROG = "alpha-umi serve-models"
MAX_BODY_BYTES = 16 << 20
MAX_CHOICES = 256  # prompts × n in one request
MAX_STOP = 16
_SURROGATE = re.compile("[\ud800-\udfff]")
_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    503: "service_unavailable",
}


# --- requests --------------------------------------------------------------------------------------


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RequestError(400, f"'{name}' must be a string", param=name)
    if _SURROGATE.search(value):
        raise RequestError(400, f"'{name}' contains a lone surrogate (not valid Unicode)", param=name)
    return value


def _int(body: dict, name: str, default: int | None, low: int | None = None, high: int | None = None):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"'{name}' must be an integer, got {json.dumps(value)[:40]}", param=name)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise RequestError(400, f"'{name}' must be {bounds}, got {value}", param=name)
    return value


def _number(body: dict, name: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RequestError(400, f"'{name}' must be a number", param=name)
    if value < low or value > high or (low_open and value == low):
        raise RequestError(
            400, f"'{name}' must be in {'(' if low_open else '['}{low}, {high}], got {value}", param=name
        )
    return float(value)


def _unsupported(body: dict) -> None:
    refused = {
        "echo": bool(body.get("echo")),
        "logprobs": body.get("logprobs") is not None,
        "best_of": body.get("best_of") not in (None, 1),
        "suffix": bool(body.get("suffix")),
        "frequency_penalty": body.get("frequency_penalty") not in (None, 0),
        "presence_penalty": body.get("presence_penalty") not in (None, 0),
        "logit_bias": bool(body.get("logit_bias")),
    }
    for name, bad in refused.items():
        if bad:
            raise RequestError(400, f"'{name}' is not supported by {PROG}", "unsupported_parameter", name)


def parse_request(body: Any) -> tuple[str, list[str], SamplingParams, bool, bool]:
    """(model, prompts, params, stream, include_usage) of a completions body, or :class:`RequestError`."""
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    model = _text(body.get("model"), "model") if body.get("model") is not None else None
    if not model:
        raise RequestError(400, "'model' is required (a served name, see GET /v1/models)", param="model")
    _unsupported(body)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    else:
        raise RequestError(
            400,
            "'prompt' must be a string or a non-empty list of strings (token ids are not supported)",
            param="prompt",
        )
    for p in prompts:
        _text(p, "prompt")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(
            400, f"'stop' must be a non-empty string or a list of at most {MAX_STOP} of them", param="stop"
        )
    for s in stop:
        _text(s, "stop")
    n = _int(body, "n", 1, 1, MAX_CHOICES)
    if n * len(prompts) > MAX_CHOICES:
        raise RequestError(
            400, f"{len(prompts)} prompts x n={n} is more than {MAX_CHOICES} completions", param="n"
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError(400, "'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError(400, "'stream_options' must be an object", param="stream_options")
    grammar = None
    for path, value in (
        ("structured_outputs.grammar", (body.get("structured_outputs") or {}).get("grammar")
         if isinstance(body.get("structured_outputs"), dict) else None),
        ("guided_grammar", body.get("guided_grammar")),
        ("ebnf", body.get("ebnf")),
    ):  # fmt: skip
        if value is not None:
            grammar = _text(value, path)
    if body.get("structured_outputs") is not None and not isinstance(body.get("structured_outputs"), dict):
        raise RequestError(400, "'structured_outputs' must be an object", param="structured_outputs")
    if grammar is not None:
        _check_grammar(grammar)
    params = SamplingParams(
        max_tokens=_int(body, "max_tokens", 16, 0),
        temperature=_number(body, "temperature", 1.0, 0.0, 100.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        top_k=_int(body, "top_k", 0),
        seed=_int(body, "seed", None, -(2**63), 2**64 - 1),
        stop=tuple(stop),
        n=n,
        truncate_prompt_tokens=_int(body, "truncate_prompt_tokens", None, 1),
        grammar=grammar,
    )
    return model, prompts, params, bool(stream), bool((options or {}).get("include_usage"))


def _check_grammar(grammar: str) -> None:
    """A grammar xgrammar cannot parse is the request's fault: 400 with its first line."""
    try:
        import xgrammar as xgr

        xgr.Grammar.from_ebnf(grammar)
    except Exception as e:  # xgrammar raises RuntimeError/ValueError with a parse message
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise RequestError(400, f"invalid grammar: {first}", param="structured_outputs") from None


async def _read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(413, f"request body larger than {limit} bytes", "body_too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(413, f"request body larger than {limit} bytes", "body_too_large")
    except ClientDisconnect:
        raise RequestError(400, "client disconnected before the body was read") from None
    try:
        return loads_json(bytes(body), "invalid JSON body")
    except FormatError as e:
        raise RequestError(400, str(e), "invalid_json") from None


# --- replies ---------------------------------------------------------------------------------------


def error_response(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> JSONResponse:
    """OpenAI's error shape."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "internal_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def completion_body(model: str, result: CompletionResult, rid: str, created: int) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": c.index, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
            for c in result.choices
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
    }


def _stream(body: dict[str, Any], include_usage: bool):
    """The whole result as one SSE chunk in OpenAI's streaming shape, then ``[DONE]``."""
    usage = body.pop("usage")
    yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
    if include_usage:
        yield f"data: {json.dumps({**body, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


def create_app(pool: ModelPool) -> FastAPI:
    """The completions app around a loaded pool (tests use it with TestClient or a real uvicorn)."""
    app = FastAPI(title=PROG, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool = pool
    started = int(time.time())

    def card(name: str) -> dict[str, Any]:
        served = pool.models[name]
        return {
            "id": name,
            "object": "model",
            "created": started,
            "owned_by": "alpha-umi",
            "root": served.path,
            "parent": served.parent,
            "max_model_len": pool.limit(name),
        }

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [card(name) for name in pool.names]}

    @app.get("/v1/models/{name:path}")
    def get_model(name: str):
        if name not in pool.models:
            return error_response(404, f"model {name!r} is not served", "model_not_found", "model")
        return card(name)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": pool.names}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return pool.snapshot()

    @app.post("/v1/completions")
    async def completions(request: Request):
        try:
            model, prompts, params, stream, include_usage = parse_request(await _read_json(request))
            future = await run_in_threadpool(pool.submit, model, prompts, params)
            result = await asyncio.wrap_future(future)
        except RequestError as e:
            return error_response(e.status, str(e), e.code, e.param)
        except Exception as e:  # a fault of the server, never of the request: logged, one line out
            log.error(
                "completions failed: %s", "".join(traceback.format_exception(type(e), e, e.__traceback__))
            )
            return error_response(500, f"internal error: {type(e).__name__}", "internal_error")
        body = completion_body(model, result, f"cmpl-{uuid.uuid4().hex}", int(time.time()))
        if stream:
            return StreamingResponse(_stream(body, include_usage), media_type="text/event-stream")
        return JSONResponse(body)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:  # 404/405 routes
        return error_response(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s: %r", request.url.path, exc)
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")

    return app


# --- command line ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG, description="OpenAI-compatible completions for the α-UMi roles (model = role name)."
    )
    p.add_argument("--base", default=None, help="base model folder the --adapter folders were trained on")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a LoRA adapter served unmerged on --base as NAME (repeat per role)",
    )
    p.add_argument("--base_name", default="backbone", help="name serving --base itself ('' = not served)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a full checkpoint served as NAME (repeat; names with one folder share it; an adapter folder here is merged at load)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--max_batch_size", type=int, default=8, help="most prompts in one generate call")
    p.add_argument(
        "--batch_wait_ms", type=float, default=5.0, help="how long to collect requests for a batch"
    )
    p.add_argument(
        "--prefix_cache_entries",
        type=int,
        default=8,
        help="prompt KV caches kept per served name for reuse (each holds one prompt's keys/values; 0 = off)",
    )
    p.add_argument("--context_length", type=int, default=4096, help="most prompt + completion tokens")
    p.add_argument("--log_level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def parse_specs(values: list[str], flag: str, taken: set[str]) -> dict[str, str]:
    """``NAME=PATH`` values of a repeated flag; a FormatError for bad syntax or a name given twice."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path or not NAME_RE.match(name):
            raise FormatError(f"{flag} {value!r}: expected NAME=PATH (NAME: letters, digits, ._:/-)")
        if name in taken:
            raise FormatError(f"{flag} {value!r}: the name {name!r} is given twice")
        taken.add(name)
        out[name] = path
    return out


def check_args(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    taken: set[str] = set()
    if args.base and args.base_name:
        if not NAME_RE.match(args.base_name):
            raise FormatError(f"--base_name {args.base_name!r}: letters, digits, ._:/- only")
        taken.add(args.base_name)
    adapters = parse_specs(args.adapter, "--adapter", taken)
    models = parse_specs(args.model, "--model", taken)
    if adapters and not args.base:
        raise FormatError("--adapter needs --base (the model the adapters were trained on)")
    if not args.base and not models:
        raise FormatError("give --base with --adapter NAME=PATH, or --model NAME=PATH")
    for flag, value, low in (
        ("--port", args.port, 0),
        ("--max_batch_size", args.max_batch_size, 1),
        ("--prefix_cache_entries", args.prefix_cache_entries, 0),
        ("--context_length", args.context_length, 2),
        ("--batch_wait_ms", args.batch_wait_ms, 0),
    ):
        if value < low or (flag == "--port" and value > 65535):
            raise FormatError(f"{flag} {value}: out of range")
    return adapters, models


def check_port(host: str, port: int) -> None:
    """Fail before loading models when the address cannot be bound (uvicorn would fail after)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as e:
        raise FormatError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def serve(pool: ModelPool, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the server in this process (blocking)."""
    import uvicorn

    uvicorn.run(create_app(pool), host=host, port=port, log_level=log_level, access_log=False)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        adapters, models = check_args(args)
        check_port(args.host, args.port)
        pool = ModelPool.load(
            base=args.base,
            adapters=adapters,
            models=models,
            base_name=args.base_name or None,
            device=args.device,
            dtype=args.dtype,
            max_batch_size=args.max_batch_size,
            batch_wait_ms=args.batch_wait_ms,
            prefix_cache_entries=args.prefix_cache_entries,
            context_length=args.context_length,
        )
    except FormatError as e:  # ModelFolderError included
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    log.info("serving %s on http://%s:%d/v1", ", ".join(pool.names), args.host, args.port)
    try:
        serve(pool, args.host, args.port, args.log_level)
    finally:
        pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

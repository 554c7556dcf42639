"""How the tool server answers one validated call, and what it may serve (provenance in ``source``).

Order: a registered in-process tool (``registered``); with StableToolBench's rules, arguments it cannot
parse get its ``"Tool input parse error...\\n"`` answer (``none``); the caches (``cache-real``, or the
``simulated:…`` name of a cached invention): StableToolBench's layout by its key (the SQLite table, then
a folder served in place), then the project's table; the upstream service (``upstream``: a reply
StableToolBench's ``check_result`` accepts is cached, another is served uncached — or, as it does,
passed over for the simulator, served only when the simulator fails); the simulator
(``simulated:<format>:<model>``, cached with its settings); else "no cached response …" (``none``; a
404 for a tool nothing knows). New entries go to StableToolBench's layout under its rules, else to the
project's table.

Whatever a backend answers is served safely (:func:`served_value`): text with keys redacted and lone
surrogates replaced, cut to ``max_response_chars`` + "..."; an object or list stays one (DESIGN §6)
unless it nests deeper than :data:`MAX_RESPONSE_DEPTH` or outgrows the limit (then its JSON text, cut);
other values are served as their JSON text; a reply with no JSON text is that backend failing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glpft.chat import public_url, redact, url_secrets
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.cache_keys import SURROGATE, cache_key
from toolbench_multillm.env import ToolCallError, ToolClient
from toolbench_multillm.registry import ToolRegistry
from toolbench_multillm.simulator import SIMULATOR_EXAMPLES, STB_FORMATS, Simulator, stb_context
from toolbench_multillm.sources import (
    CACHE_REAL,
    FIXED_SOURCES,
    NO_SOURCE,
    REGISTERED,
    SIMULATED_PREFIX,
    UPSTREAM,
    served_source,
)
from toolbench_multillm.stb import (
    PARSE_ERROR,
    StbInputError,
    StbLocation,
    ToolDocs,
    check_result,
    parse_input,
    stb_key,
    stb_location,
)
from toolbench_multillm.stb_cache import StbFolder, StbTable, usable_value
from toolbench_multillm.validation import MAX_BODY_BYTES

logger = logging.getLogger(__name__)

#: Longest error or response text served from a registered tool, an upstream or the simulator ("..." past it).
MAX_RESPONSE_CHARS = 1 << 20
#: Deepest object or list served as a value (a deeper one is served as its JSON text).
MAX_RESPONSE_DEPTH = 64


@dataclass
class ServerConfig:
    cache: ResponseCache
    registry: ToolRegistry = field(default_factory=ToolRegistry)
    upstream: ToolClient | None = None
    simulator: Simulator | None = None
    tool_docs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # project format
    stb_docs: ToolDocs | None = None  # toolenv/tools as StableToolBench reads it (its formats)
    stb_folder: StbFolder | None = None  # its tool_response_cache, served in place
    stb_rules: bool = False  # its argument rule, and new entries in its layout
    cache_simulated: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    max_response_chars: int = MAX_RESPONSE_CHARS
    stb: StbTable = field(init=False)

    def __post_init__(self) -> None:
        self.stb = StbTable(self.cache)

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


class Stats:
    """Thread-safe request counters behind ``GET /stats`` (hits, misses, bad requests, answers by source)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    def add(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self.counts[key] += 1

    def snapshot(self, simulator: Simulator | None = None) -> dict[str, Any]:
        with self._lock:
            c = dict(self.counts)
        by_source = {s: c.get("source:" + s, 0) for s in FIXED_SOURCES}
        if simulator is not None:
            by_source[simulator.source] = 0
        prefix = "source:" + SIMULATED_PREFIX
        by_source.update({k[len("source:") :]: v for k, v in sorted(c.items()) if k.startswith(prefix)})
        sim = None
        if simulator is not None:
            sim = {**simulator.describe(), "base_url": simulator.client.public_url}
        return {
            "requests": c.get("requests", 0),
            "hits": c.get("hits", 0),
            "misses": c.get("misses", 0),
            "bad_requests": c.get("bad_requests", 0),
            "by_source": by_source,
            "simulator": sim,
        }


class Unusable(Exception):
    """A backend's reply that cannot be served (a value with no JSON text)."""


def _text(value: str, scrub: Callable[[str], str], limit: int) -> str:
    value = SURROGATE.sub("\ufffd", scrub(value))
    return value[:limit] + "..." if len(value) > limit else value


def _clean(value: Any, scrub: Callable[[str], str], depth: int) -> Any:
    """``value`` with every string scrubbed; raises RecursionError past MAX_RESPONSE_DEPTH."""
    if depth > MAX_RESPONSE_DEPTH:
        raise RecursionError
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", scrub(value))
    if isinstance(value, dict):
        return {
            (_clean(k, scrub, depth) if isinstance(k, str) else k): _clean(v, scrub, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_clean(v, scrub, depth + 1) for v in value]
    return value


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError) as e:
        raise Unusable(f"a value with no JSON text ({type(e).__name__})") from None


def served_value(value: Any, limit: int, scrub: Callable[[str], str] = str) -> str | dict | list:
    """A response as served and cached: text scrubbed (keys redacted), lone surrogates → U+FFFD, cut to
    ``limit`` + "..."; an object or list the same inside, kept as the value when it nests at most
    MAX_RESPONSE_DEPTH levels and its JSON text fits in ``limit`` (else that text, cut); any other value
    (number, boolean, null) as its JSON text. :class:`Unusable` when it has no JSON text."""
    if isinstance(value, str):
        return _text(value, scrub, limit)
    if isinstance(value, (dict, list)):
        try:
            cleaned = _clean(value, scrub, 1)
            text = json.dumps(cleaned, ensure_ascii=False, allow_nan=False)
        except (RecursionError, ValueError, TypeError):
            return _text(_json(value), scrub, limit)
        return cleaned if len(text) <= limit else _text(text, scrub, limit)
    return _text(_json(value), scrub, limit)


def served_error(value: Any, limit: int, scrub: Callable[[str], str] = str) -> str:
    """An ``error`` as served: text (other values as their JSON text), ``""`` for a falsy value."""
    if not value:
        return ""
    return _text(value if isinstance(value, str) else _json(value), scrub, limit)


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


@dataclass(frozen=True)
class StbCall:
    """A call as StableToolBench sees it: where its cache keeps it, the parsed arguments and its key
    (``None``: its parse error)."""

    location: StbLocation
    parsed: Any = None
    key: str | None = None


def stb_call(payload: dict[str, Any]) -> StbCall:
    loc = stb_location(payload["category"], payload["tool_name"], payload["api_name"])
    try:
        parsed = parse_input(payload["tool_input"])
    except StbInputError:
        return StbCall(loc)
    return StbCall(loc, parsed, stb_key(parsed))


def _answer(error: str, response: Any, source: str) -> dict[str, Any]:
    return {"error": error, "response": response, "source": source}


def parse_error(config: ServerConfig, call: StbCall) -> dict[str, Any] | None:
    """StableToolBench's answer to arguments it cannot parse, under its rules."""
    return _answer(PARSE_ERROR, "", NO_SOURCE) if config.stb_rules and call.key is None else None


def _stb_answer(config: ServerConfig, value: Any, source: str) -> dict[str, Any] | None:
    if not usable_value(value):
        return None
    try:
        limit = config.max_response_chars
        return _answer(
            served_error(value.get("error"), limit), served_value(value["response"], limit), source
        )
    except Unusable:
        return None


def cached_answer(config: ServerConfig, payload: dict[str, Any], call: StbCall) -> dict[str, Any] | None:
    """A hit in the SQLite cache: StableToolBench's layout by its key, then the project's table."""
    if call.key is not None:
        hit = config.stb.get(call.location, call.key)
        answer = _stb_answer(config, hit[0], served_source(hit[1])) if hit else None
        if answer is not None:
            return answer
    hit = config.cache.get(
        payload["tool_name"], payload["api_name"], payload["tool_input"], payload["category"]
    )
    if hit is None:
        return None
    try:  # as stored; a value cached by an older server is made safe here
        return _answer(
            hit.error, served_value(hit.response, config.max_response_chars), served_source(hit.source)
        )
    except Unusable:
        return None


def _store(
    config: ServerConfig, payload: dict, call: StbCall, error: str, response: Any, source: str, meta=""
) -> None:
    if config.stb_rules and call.key is not None:
        config.stb.put(call.location, call.key, {"error": error, "response": response}, source, meta)
    else:
        tool, api = payload["tool_name"], payload["api_name"]
        config.cache.put(
            tool, api, payload["tool_input"], error, response, source, payload["category"], meta=meta
        )


def _worth_keeping(reply: dict) -> bool:
    """StableToolBench's ``check_result`` (a reply whose ``str()`` cannot be made is not kept)."""
    try:
        return check_result(reply)
    except (RecursionError, ValueError):
        return False


def _known(config: ServerConfig, payload: dict, call: StbCall) -> bool:
    """Whether any cache, doc or folder knows this API (only then does the project simulator try)."""
    tool, api = payload["tool_name"], payload["api_name"]
    if (
        config.cache.knows(tool, api)
        or cache_key(tool, api) in config.tool_docs
        or config.stb.knows(call.location)
    ):
        return True
    if config.stb_folder is not None and config.stb_folder.entries(call.location):
        return True
    return config.stb_docs is not None and config.stb_docs.has_tool(call.location, tool)


def _stb_examples(config: ServerConfig, call: StbCall) -> list[tuple[str, Any]]:
    """The api file's first entries as StableToolBench would have them: the folder's, then ours after them."""
    items = list(config.stb_folder.entries(call.location).items())[:5] if config.stb_folder else []
    seen = {k for k, _ in items}
    items += [(k, v) for k, v in config.stb.items(call.location, 5) if k not in seen]
    return items[:5]


def _simulate(
    config: ServerConfig, payload: dict, call: StbCall, secrets: list[str]
) -> dict[str, Any] | None:
    sim = config.simulator
    tool, api = payload["tool_name"], payload["api_name"]
    try:
        if sim.format in STB_FORMATS:
            if call.key is None:  # its server never simulates arguments it cannot parse
                return None
            items = _stb_examples(config, call) if sim.format == "stb-gpt" else []
            ctx = stb_context(sim.format, config.stb_docs, call.location, tool, call.parsed, items)
            simulated = sim.simulate(payload, stb=ctx)
        else:
            doc = config.tool_docs.get(cache_key(tool, api))
            simulated = sim.simulate(payload, doc, config.cache.examples(tool, api, SIMULATOR_EXAMPLES))
        if simulated is None:
            return None

        def scrub(t: str) -> str:
            return sim.client.redact(redact(t, secrets))

        limit = config.max_response_chars
        error, response = served_error(simulated[0], limit, scrub), served_value(simulated[1], limit, scrub)
    except Exception as e:  # Simulator.simulate never raises; another simulator object might
        logger.warning("simulator failed for %s/%s: %s", tool, api, _one_line(redact(repr(e), secrets)))
        return None
    if config.cache_simulated:
        _store(config, payload, call, error, response, sim.source, json.dumps(sim.describe()))
    return _answer(error, response, sim.source)


def lookup(
    config: ServerConfig,
    payload: dict[str, Any],
    stats: Stats,
    cache_checked: bool = False,
    call: StbCall | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer with its ``source``) of one validated call, trying each backend in order
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
        stats.add("hits", "source:" + REGISTERED)
        try:
            return 200, _answer(served_error(error, limit), served_value(response, limit), REGISTERED)
        except Unusable as e:
            return 200, _answer(f"tool result unusable: {e}", "", REGISTERED)
    call = call or stb_call(payload)
    answer = parse_error(config, call) or (None if cache_checked else cached_answer(config, payload, call))
    if answer is None and config.stb_folder is not None and call.key is not None:
        answer = _stb_answer(config, config.stb_folder.get(call.location, call.key), CACHE_REAL)
    if answer is not None:
        stats.add("hits" if answer["source"] != NO_SOURCE else "misses", "source:" + answer["source"])
        return 200, answer
    stats.add("misses")
    upstream_failure, upstream_answer = "", None
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

            def scrub(t: str) -> str:
                return redact(t, secrets)

            error = served_error(data.get("error"), limit, scrub)
            upstream_answer = _answer(error, served_value(data.get("response", ""), limit, scrub), UPSTREAM)
        except ToolCallError as e:
            upstream_failure = _one_line(redact(str(e), secrets))
        except Unusable as e:
            upstream_failure = f"unusable reply: {e}"
        except Exception as e:  # the client must not turn whatever the upstream sends into a 500
            upstream_failure = _one_line(f"{type(e).__name__}: {redact(str(e), secrets)}")
        else:
            if _worth_keeping(data):
                _store(config, payload, call, upstream_answer["error"], upstream_answer["response"], UPSTREAM)
                stats.add("source:" + UPSTREAM)
                return 200, upstream_answer
            if config.simulator is None:
                stats.add("source:" + UPSTREAM)
                return 200, upstream_answer
        if upstream_failure:
            logger.info(
                "upstream %s failed for %s/%s: %s",
                public_url(config.upstream.url),
                tool,
                api,
                upstream_failure,
            )
    sim = config.simulator
    if sim is not None and (sim.format in STB_FORMATS or _known(config, payload, call)):
        answer = _simulate(config, payload, call, secrets)
        if answer is not None:
            stats.add("source:" + answer["source"])
            return 200, answer
    if upstream_answer is not None:  # not worth caching, but better than nothing
        stats.add("source:" + UPSTREAM)
        return 200, upstream_answer
    stats.add("source:" + NO_SOURCE)
    if not _known(config, payload, call) and config.upstream is None and not config.registry.knows_tool(tool):
        return 404, _answer(f"unknown tool or API: {tool}/{api}", "", NO_SOURCE)
    error = f"no cached response for {tool}/{api} with this input"
    if upstream_failure:
        error += f"; upstream failed: {upstream_failure}"
    return 200, _answer(error, "", NO_SOURCE)

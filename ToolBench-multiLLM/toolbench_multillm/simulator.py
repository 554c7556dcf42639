"""The tool server's LLM simulators: an OpenAI-compatible chat model invents answers for uncached calls.

    alpha-umi serve-tools --cache tool_cache.sqlite --simulator_format stb-gpt \
        --simulator_base_url https://api.openai.com/v1 --simulator_model gpt-4-turbo --tool_root_dir toolenv/tools
    alpha-umi serve-tools --cache tool_cache.sqlite --simulator_format mirrorapi \
        --simulator_base_url http://127.0.0.1:12345/v1 --simulator_model MirrorAPI --tool_root_dir toolenv/tools

Formats (:data:`SIMULATOR_FORMATS`):

- ``project`` (default): our prompt — the API's doc (:func:`load_tool_docs`), up to
  :data:`SIMULATOR_EXAMPLES` cached real calls and the call; a reply must be ``{"error", "response"}`` JSON
  (:func:`parse_simulated`), asked again once.
- ``stb-gpt``: StableToolBench's GPT simulator (``server/main.py``) request for request — its system
  prompt, ``"API Documentation:" + str(api_doc) + "\\nAPI Examples:" + str(examples)[:2048] + "\\nAPI
  Input:" + str(tool_input) + "\\n"``, ``max_tokens=1024``, ``response_format={"type": "json_object"}``, its
  temperature (0), up to 3 requests 1 s apart until the reply (```json fences stripped) parses as JSON.
- ``mirrorapi`` / ``mirrorapi-cache``: its MirrorAPI servers (``server/main_mirrorapi.py`` /
  ``main_mirrorapi_cache.py``, which differ in the doc's ``api_name``): ``SFT_SYSTEM``, ``"API doc:\\n{api_doc}
  \\n\\nRequest:\\n{request}"``, ``temperature=0.1``, ``max_tokens=2048``, ``seed=42``, one request, its reply
  reader (JSON, else its regular expressions). They need the API's entry in ``--tool_root_dir``.

Requests go through :class:`glpft.chat.ChatClient` (keys never logged). Whatever the endpoint answers is
a ``None`` from :meth:`Simulator.simulate` when it is not usable, never an exception. A response that is
a JSON object or list keeps its type.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from glpft.chat import ChatClient, EndpointUnavailable, content_of
from glpft.formats import FormatError, read_json
from toolbench_multillm.cache_keys import cache_key, canonical_input
from toolbench_multillm.sources import simulated_source
from toolbench_multillm.stb import EXAMPLE_CHARS, StbLocation, ToolDocs, choose_examples
from toolbench_multillm.stb_prompts import GPT_SYSTEM, MIRRORAPI_SYSTEM, MIRRORAPI_USER

logger = logging.getLogger(__name__)

#: Cached real calls of the same API shown to the ``project`` simulator as examples.
SIMULATOR_EXAMPLES = 5
SIMULATOR_FORMATS = ("project", "stb-gpt", "mirrorapi", "mirrorapi-cache")
#: Formats that follow StableToolBench's rules (its argument parsing, cache layout and api docs).
STB_FORMATS = SIMULATOR_FORMATS[1:]

SIMULATOR_SYSTEM = (
    "You imitate a RapidAPI endpoint. Given the API documentation, example calls with their real "
    "responses, and a new call, answer with the response the real API would most plausibly return. "
    'Reply with one JSON object and nothing else: {"error": "", "response": "<the API response as a string>"}. '
    'Use a non-empty "error" only when the call itself is invalid.'
)


@dataclass(frozen=True)
class FormatSettings:
    """What one format sends and how it retries (StableToolBench's values for its formats)."""

    temperature: float
    seed: int | None = None
    max_tokens: int | None = None
    json_mode: bool = False
    tries: int = 1  # requests per call while the reply is not usable
    retry_delay: float = 0.0  # seconds between those requests
    max_retries: int = 2  # the client's own retries (timeouts, 429, 5xx); the openai client's default
    backoff: float = 0.5
    max_backoff: float = 8.0


FORMATS = {
    "project": FormatSettings(0.0, tries=2, max_retries=1, max_backoff=2.0),
    # paper parity: config.yml's temperature 0; the openai client's 2 retries, 0.5-8 s apart
    "stb-gpt": FormatSettings(0.0, max_tokens=1024, json_mode=True, tries=3, retry_delay=1.0),
    "mirrorapi": FormatSettings(0.1, seed=42, max_tokens=2048),  # config_mirrorapi.yml
    "mirrorapi-cache": FormatSettings(0.1, seed=42, max_tokens=2048),
}


@dataclass(frozen=True)
class StbContext:
    """What StableToolBench's simulators are shown for one call."""

    tool_input: Any  # the arguments as its server parsed them
    api_doc: Any  # its api_doc (stb-gpt) or MirrorAPI doc (None: the entry that format needs is missing)
    examples: list[tuple[str, Any]] = field(default_factory=list)  # the api file's (key, value), in order


def stb_context(
    fmt: str, docs: ToolDocs | None, loc: StbLocation, tool_name: str, tool_input: Any, items: list
) -> StbContext:
    """The :class:`StbContext` of one call for ``fmt``: the doc read as its server reads it."""
    if fmt == "stb-gpt":
        doc = docs.gpt_doc(loc, tool_name) if docs else {"tool_description": "", "api_info": ""}
        return StbContext(tool_input, doc, items)
    doc = docs.mirror_doc(loc, tool_name, raw_api_name=fmt == "mirrorapi") if docs else None
    return StbContext(tool_input, doc)


def _number(x: float) -> float | int:
    """0 rather than 0.0 on the wire, as StableToolBench's YAML gives it."""
    return int(x) if float(x).is_integer() else x


class Simulator:
    """An OpenAI-compatible chat model that invents responses for uncached calls in one ``format``.

    :meth:`simulate` never raises; a dead endpoint costs little more than its timeouts and few retries.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http_client: httpx.Client | None = None,
        max_retries: int | None = None,
        backoff: float | None = None,
        format: str = "project",
        temperature: float | None = None,
        seed: int | None = None,
        retry_delay: float | None = None,
    ):
        if format not in FORMATS:
            raise ValueError(f"simulator format must be one of {SIMULATOR_FORMATS}, not {format!r}")
        s = FORMATS[format]
        self.model, self.format = model, format
        self.temperature = s.temperature if temperature is None else temperature
        self.seed = s.seed if seed is None else seed
        self.settings = s
        self.retry_delay = s.retry_delay if retry_delay is None else retry_delay
        self.client = ChatClient(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=s.max_retries if max_retries is None else max_retries,
            backoff=s.backoff if backoff is None else backoff,
            max_backoff=s.max_backoff,
            http_client=http_client,
            name="simulator",
        )

    def __repr__(self) -> str:  # never shows a key or URL credentials
        return f"Simulator(url={self.client.public_url!r}, model={self.model!r})"

    @property
    def source(self) -> str:
        """``simulated:<format>:<model>``: the ``source`` of what it invents."""
        return simulated_source(self.format, self.model)

    def describe(self) -> dict[str, Any]:
        """Format, model, temperature and seed (recorded with each simulated entry and in ``/stats``)."""
        return {
            "format": self.format,
            "model": self.model,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    def params(self) -> dict[str, Any]:
        """The request's parameters besides ``model`` and ``messages``."""
        p: dict[str, Any] = {"temperature": _number(self.temperature)}
        if self.settings.max_tokens is not None:
            p["max_tokens"] = self.settings.max_tokens
        if self.settings.json_mode:
            p["response_format"] = {"type": "json_object"}
        if self.seed is not None:
            p["seed"] = self.seed
        return p

    def prompt(
        self, payload: dict[str, Any], doc: dict[str, Any] | None, examples: list[tuple[str, str, str]]
    ) -> str:
        """The ``project`` user message: category, tool, API, its doc, (input, error, response) examples, the call."""
        lines = [
            f"Category: {payload.get('category', '')}",
            f"Tool: {payload['tool_name']}",
            f"API: {payload['api_name']}",
        ]
        if doc:
            try:
                lines.append("API documentation: " + json.dumps(doc, ensure_ascii=False)[:4000])
            except (ValueError, TypeError, RecursionError):  # a doc with no JSON text is left out
                pass
        for inp, error, response in examples[:SIMULATOR_EXAMPLES]:
            lines.append(
                "Example call: "
                + inp
                + "\nExample response: "
                + json.dumps({"error": error, "response": response[:2000]})
            )
        lines.append("Call: " + canonical_input(payload.get("tool_input")))
        return "\n".join(lines)

    def messages(
        self,
        payload: dict[str, Any],
        doc: dict[str, Any] | None,
        examples: list[tuple[str, str, str]],
        stb: StbContext | None = None,
    ) -> list[dict[str, str]] | None:
        """The chat messages of one call in this format; None when the format cannot be asked (MirrorAPI
        without its doc or with arguments that are not an object: its servers fail there)."""
        if self.format == "project":
            return [
                {"role": "system", "content": SIMULATOR_SYSTEM},
                {"role": "user", "content": self.prompt(payload, doc, examples)},
            ]
        if stb is None:
            return None
        if self.format == "stb-gpt":
            user = (
                "API Documentation:" + str(stb.api_doc) + "\n"
                "API Examples:" + str(choose_examples(stb.examples))[:EXAMPLE_CHARS] + "\n"
                "API Input:" + str(stb.tool_input) + "\n"
            )
            return [{"role": "system", "content": GPT_SYSTEM}, {"role": "user", "content": user}]
        if stb.api_doc is None or not isinstance(stb.tool_input, dict):
            return None
        request = {k: v for k, v in stb.tool_input.items() if k != "toolbench_key"}
        user = MIRRORAPI_USER.format(api_doc=stb.api_doc, request=request)
        return [{"role": "system", "content": MIRRORAPI_SYSTEM}, {"role": "user", "content": user}]

    def parse(self, content: Any) -> tuple[str, Any] | None:
        if self.format == "project":
            return parse_simulated(content)
        if self.format == "stb-gpt":
            return parse_stb_gpt(content)
        return parse_mirrorapi(content)

    def simulate(
        self,
        payload: dict[str, Any],
        doc: dict[str, Any] | None = None,
        examples: list[tuple[str, str, str]] | None = None,
        tries: int | None = None,
        stb: StbContext | None = None,
    ) -> tuple[str, Any] | None:
        """(error, response) invented for one call, or None when the endpoint fails or never replies well.

        A reply that cannot be read is asked for again, up to ``tries`` requests in all (the format's
        number by default); an endpoint that is down or refuses (after the client's retries) ends it at once.
        """
        try:
            messages = self.messages(payload, doc, examples or [], stb)
        except (ValueError, TypeError, RecursionError) as e:  # an input with no JSON text
            logger.warning("simulator skipped: the call cannot be shown (%s)", type(e).__name__)
            return None
        if messages is None:
            logger.warning("simulator (%s) skipped: no API doc for %s", self.format, payload.get("api_name"))
            return None
        attempts = self.settings.tries if tries is None else tries
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.retry_delay)
            try:
                body = self.client.chat(messages, self.model, **self.params())
                parsed = self.parse(content_of(body))
            except EndpointUnavailable as e:  # its message is redacted by the client
                logger.warning("simulator unavailable: %s", e)
                return None
            except httpx.InvalidURL:
                logger.warning("simulator URL %s is invalid", self.client.public_url)
                return None
            except Exception as e:  # whatever the endpoint does, the server answers without it
                logger.warning("simulator failed: %s: %s", type(e).__name__, self.client.redact(str(e))[:200])
                return None
            if parsed is not None:
                return parsed
            logger.warning("simulator reply is not usable (%s format)", self.format)
        return None


def _error_text(error: Any) -> str:
    return error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)


def parse_simulated(text: Any) -> tuple[str, Any] | None:
    """(error, response) of a ``project`` reply: one JSON object with a ``response`` (code fences allowed;
    an object or list response keeps its type, other values become their JSON text); None for anything
    else (bad syntax, deep nesting, huge integers, values with no JSON text)."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or "response" not in data:
            return None
        response = data["response"]
        if not isinstance(response, (str, dict, list)):
            response = json.dumps(response, ensure_ascii=False)
        return _error_text(data.get("error") or ""), response
    except (ValueError, TypeError, RecursionError):
        return None


def parse_stb_gpt(text: Any) -> tuple[str, Any] | None:
    """Its GPT simulator's reading: ```json fences removed, then any JSON text is valid. fixes: a reply
    that is not an object (its server passed it on and the client failed) counts as not valid."""
    if not isinstance(text, str):
        return None
    if "```json" in text:
        text = text.replace("```json", "").replace("```", "").strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return _error_text(data.get("error", "")), data.get("response", "")
    except (ValueError, TypeError, RecursionError):
        return None


_MECHANISM = re.compile(
    r'"mechanism_of_the_api"\s*:\s*"(.*?)",\s*"error"\s*:\s*"(.*?)",\s*"response"\s*:\s*"(.*)', re.DOTALL
)
_ERROR_RESPONSE = re.compile(r'"error":\s*"([^"]*)",\s*"response":\s*"(.*)', re.DOTALL)


def parse_mirrorapi(text: Any) -> tuple[str, Any] | None:
    """Its MirrorAPI reader (``extract_attributes_json``): JSON with ``error`` and ``response``, else its
    regular expressions (paper parity: the response then runs to the end of the text, closing quote and
    brace included); None where its server fails or answers "Failed to generate fake response" (both
    fields empty)."""
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        m = (_MECHANISM if "mechanism_of_the_api" in text else _ERROR_RESPONSE).search(text)
        if m is None:
            return None
        error, response = m.group(m.lastindex - 1), m.group(m.lastindex)
    else:
        if not isinstance(data, dict) or "error" not in data or "response" not in data:
            return None
        error, response = data["error"], data["response"]
    if not (error or response):
        return None
    try:
        return _error_text(error), response
    except (ValueError, TypeError, RecursionError):
        return None


def load_tool_docs(tool_root_dir: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(standardised tool, API) → API doc of every ``<root>/<category>/<tool>.json`` (read at start-up),
    for the ``project`` format.

    A missing ``tool_root_dir`` is a one-line :class:`FormatError`; unreadable tool files are logged and skipped.
    """
    if not os.path.isdir(tool_root_dir):
        raise FormatError(f"{tool_root_dir}: no such directory (expected toolenv/tools)", "missing folder")
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for category in sorted(os.listdir(tool_root_dir)):
        cdir = os.path.join(tool_root_dir, category)
        if not os.path.isdir(cdir):
            continue
        for file in sorted(os.listdir(cdir)):
            if not file.endswith(".json"):
                continue
            try:
                tool = read_json(os.path.join(cdir, file))
                for api in tool.get("api_list") or []:
                    docs.setdefault(
                        cache_key(file[: -len(".json")], api["name"]),
                        {"tool_description": tool.get("tool_description", ""), **api},
                    )
            except (FormatError, KeyError, TypeError, AttributeError):
                logger.warning("%s: unreadable tool file skipped", os.path.join(cdir, file))
    return docs

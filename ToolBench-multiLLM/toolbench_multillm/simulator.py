"""The tool server's LLM simulator: an OpenAI-compatible chat model invents answers for uncached calls.

    alpha-umi serve-tools --cache tool_cache.sqlite \
        --simulator_base_url http://127.0.0.1:8000/v1 --simulator_model NAME [--tool_root_dir data/toolenv/tools]

StableToolBench's idea: the prompt shows the API's doc (from ``--tool_root_dir``, see
:func:`load_tool_docs`), up to :data:`SIMULATOR_EXAMPLES` cached real calls and the new call; only a
reply that parses as ``{"error", "response"}`` JSON (:func:`parse_simulated`) is served and cached.
Requests go through :class:`glpft.chat.ChatClient` (keys never logged). Whatever the endpoint answers
(not JSON, nested too deeply, huge integers, wrong types) is a ``None`` from :meth:`Simulator.simulate`,
never an exception.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import httpx

from glpft.chat import ChatClient, EndpointUnavailable, content_of
from glpft.formats import FormatError, read_json
from toolbench_multillm.cache import cache_key, canonical_input

logger = logging.getLogger(__name__)

#: Cached real calls of the same API shown to the simulator as examples.
SIMULATOR_EXAMPLES = 5

SIMULATOR_SYSTEM = (
    "You imitate a RapidAPI endpoint. Given the API documentation, example calls with their real "
    "responses, and a new call, answer with the response the real API would most plausibly return. "
    'Reply with one JSON object and nothing else: {"error": "", "response": "<the API response as a string>"}. '
    'Use a non-empty "error" only when the call itself is invalid.'
)


class Simulator:
    """An OpenAI-compatible chat model that invents responses for uncached calls (validated JSON only).

    Retries are few and short (``max_retries`` more attempts, ``backoff`` seconds apart, at most 2 s),
    so a dead simulator delays a request by little more than its timeouts; :meth:`simulate` never raises.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http_client: httpx.Client | None = None,
        max_retries: int = 1,
        backoff: float = 0.5,
    ):
        self.model = model
        self.client = ChatClient(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=2.0,
            http_client=http_client,
            name="simulator",
        )

    def __repr__(self) -> str:  # never shows a key or URL credentials
        return f"Simulator(url={self.client.public_url!r}, model={self.model!r})"

    def prompt(
        self, payload: dict[str, Any], doc: dict[str, Any] | None, examples: list[tuple[str, str, str]]
    ) -> str:
        """The user message: category, tool, API, its doc, (input, error, response) examples, the call."""
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

    def simulate(
        self,
        payload: dict[str, Any],
        doc: dict[str, Any] | None,
        examples: list[tuple[str, str, str]],
        tries: int = 2,
    ) -> tuple[str, str] | None:
        """(error, response) invented for one call, or None when the endpoint fails or never replies well.

        A reply that does not parse is asked for again, up to ``tries`` requests in all; an endpoint that
        is down or refuses (after the client's own retries) ends the attempt at once.
        """
        try:
            prompt = self.prompt(payload, doc, examples)
        except (ValueError, TypeError, RecursionError) as e:  # an input with no JSON text
            logger.warning("simulator skipped: the call cannot be shown (%s)", type(e).__name__)
            return None
        messages = [{"role": "system", "content": SIMULATOR_SYSTEM}, {"role": "user", "content": prompt}]
        for _ in range(tries):
            try:
                body = self.client.chat(messages, self.model, temperature=0)
                parsed = parse_simulated(content_of(body))
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
                return self.client.redact(parsed[0]), self.client.redact(parsed[1])
            logger.warning("simulator reply is not an {error, response} JSON object")
        return None


def parse_simulated(text: Any) -> tuple[str, str] | None:
    """(error, response) of a simulator reply: one JSON object with a ``response`` (code fences allowed);
    None for anything else (bad syntax, deep nesting, huge integers, values with no JSON text)."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or "response" not in data:
            return None
        error, response = data.get("error") or "", data["response"]
        return (error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)), (
            response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
        )
    except (ValueError, TypeError, RecursionError):
        return None


def load_tool_docs(tool_root_dir: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(standardised tool, API) → API doc of every ``<root>/<category>/<tool>.json`` (read at start-up).

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

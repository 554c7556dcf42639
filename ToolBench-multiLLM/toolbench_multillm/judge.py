"""ToolEval's LLM judge over the OpenAI chat-completions protocol (OpenAI, a local vLLM server, …).

Two questions, each with our own prompt below and ToolEval's decision rules:
  * pass rate — is the query Solved / Unsolved / Unsure given the answer's tool calls and final answer?
  * preference — which of two answers (A or B) solves the query better?
The judge replies with a JSON object. A reply that cannot be parsed is asked again (``parse_retries``)
and then counted as Unsure (pass) or a tie (preference), flagged ``malformed``; it never raises.
Requests go through the project's one endpoint client, :class:`glpft.chat.ChatClient` (key rotation,
retries of 429 / 5xx / timeouts with backoff, redaction); when retries run out, or the endpoint refuses
the request (401, 404, …), ``JudgeUnavailable`` stops the run — labels already written are kept and a
rerun resumes, instead of filling the results with made-up Unsure labels.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from glpft.chat import ChatClient, EndpointUnavailable, content_of
from glpft.formats import FormatError, read_json
from glpft.parsing import FINISH_NAME
from toolbench_multillm.convert import ConvertedBody, answer_chain, final_answer_text, tool_call

log = logging.getLogger(__name__)

SOLVED, UNSOLVED, UNSURE = "Solved", "Unsolved", "Unsure"
SCORES = {SOLVED: 1.0, UNSURE: 0.5, UNSOLVED: 0.0}

PASS_SYSTEM_PROMPT = """\
You grade whether an AI assistant that uses tools (real-time APIs) solved a user's query.
You see the query, the tool calls the assistant made with the responses it received, and its final answer.

Decide "answer_status":
- "Solved": the final answer addresses every part of the query, and the facts it states are supported by
  the tool responses shown (or need no tool, e.g. common knowledge or arithmetic on tool results).
- "Unsolved": the final answer is missing or empty, apologises or gives up, only describes what it would
  do, leaves any part of the query unaddressed, or states specifics (names, numbers, links, results) that
  the tool responses do not support or contradict.
- "Unsure": the answer looks like a real solution but what is shown is not enough to tell whether it is
  correct (for example the supporting tool responses are cut off).
Judge only what is shown; do not reward length or politeness.

Reply with one JSON object and nothing else:
{"reason": "<one or two sentences>", "answer_status": "Solved" | "Unsolved" | "Unsure"}"""

PREFERENCE_SYSTEM_PROMPT = """\
You compare two answers, A and B, that AI assistants using tools (real-time APIs) gave to the same query.
For each you see its tool calls with the responses received and its final answer.

Prefer the answer that, in this order of importance:
1. solves more of the query: addresses more of its parts with a usable final answer (an answer that gives
   up or has no final answer loses to one that gives a real answer);
2. is better supported: its facts come from its tool responses rather than being made up;
3. got there more directly: fewer failed, repeated or irrelevant tool calls.
The order in which the answers are shown says nothing about their quality.

Reply with one JSON object and nothing else:
{"reason": "<one or two sentences>", "preferred": "A" | "B"}"""


class JudgeUnavailable(EndpointUnavailable):
    """The judge endpoint could not be used (refused the request, or failed after all retries)."""


@dataclass
class JudgeConfig:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-3.5-turbo"  # paper parity: ToolEval's tooleval_gpt-3.5-turbo_default
    api_keys: list[str] = field(default_factory=list, repr=False)
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5  # extra attempts after a 429 / 5xx / timeout / connection error
    backoff: float = 1.0  # first wait in seconds; doubles per attempt, with jitter, capped at max_backoff
    max_backoff: float = 60.0
    parse_retries: int = 2  # re-asks after a malformed reply before counting it as Unsure
    temperature: float | None = None  # None: the endpoint's default (repeats then sample the judge)
    json_mode: bool = False  # send response_format={"type": "json_object"} (OpenAI, vLLM support it)
    max_response_chars: int = 1024  # each tool response shown to the judge is cut to this


@dataclass
class Verdict:
    label: str  # Solved/Unsolved/Unsure, or "A"/"B"/"tie" for preferences
    reason: str
    malformed: bool = False


def load_api_keys(api_pool_file: str | None = None) -> list[str]:
    """Keys from a key-pool JSON file (the paper's API_POOL_FILE), else ``$OPENAI_API_KEY``, else none.

    Pool formats: ``["sk-…", …]``, ``[{"api_key": "sk-…", …}, …]`` (ToolBench's) or ``{"api_keys": [...]}``.
    A bad pool file raises a one-line FormatError naming it (never showing a key).
    """
    if api_pool_file:
        pool = read_json(api_pool_file, expect=(list, dict))
        if isinstance(pool, dict):
            pool = pool.get("api_keys", pool.get("keys", []))
            if not isinstance(pool, list):
                raise FormatError(f"{api_pool_file}: field 'api_keys' should be a list", "bad 'api_keys'")
        keys = []
        for i, item in enumerate(pool):
            key = item.get("api_key", "") if isinstance(item, dict) else item
            if not isinstance(key, str):
                raise FormatError(
                    f"{api_pool_file}: record {i}: expected a key string or an object with a string 'api_key'",
                    "bad 'api_key'",
                )
            if key:
                keys.append(key)
        if not keys:
            raise FormatError(f"{api_pool_file}: no 'api_key' entries in the key pool", "no keys")
        return keys
    key = os.environ.get("OPENAI_API_KEY", "")
    return [key] if key else []


# ----------------------------------------------------------------------------- reply parsing

_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
#: the only way a JSON object can start: "{", then "}" or a string key and ":" (JSON whitespace between)
_OBJECT_START = re.compile(r'\{(?=[ \t\n\r]*(?:\}|"(?:[^"\\]|\\.)*"[ \t\n\r]*:))', re.DOTALL)
_DECODER = json.JSONDecoder()
_WINDOW = 256  # first window decoded at each object start (characters)
#: errors this close to the end of a window may come from the cut (a literal, number or escape cut short)
_CUT_MARGIN = 32


def _object_at(text: str, start: int) -> tuple[dict | None, int]:
    """``(object, end)`` for the JSON object at ``text[start]``, else ``(None, furthest index scanned)``.

    Decodes growing windows of ``text`` rather than ``text`` itself: a JSONDecodeError costs time in
    its absolute position, so failed attempts far into a long reply made parsing quadratic.
    """
    size = _WINDOW
    while True:
        window = text[start : start + size]
        try:
            value, end = _DECODER.raw_decode(window)
            return value, start + end
        except RecursionError:  # fixes: a reply nested ~1000 deep used to crash the run
            return None, start + len(window)
        except json.JSONDecodeError as e:
            unterminated = e.msg.startswith("Unterminated string")
            if start + size < len(text) and (unterminated or e.pos >= len(window) - _CUT_MARGIN):
                size *= 4  # the failure may be the window's cut: look further
                continue
            return None, start + (len(window) if unterminated else max(e.pos, 1))
        except ValueError:  # fixes: an integer of more than 4300 digits crashed the run
            return None, start + len(window)


def parse_json_reply(text: str | None) -> dict | None:
    """The first JSON object in a reply (code fences and surrounding prose tolerated), else None.

    Every place an object can start is tried in order, as ToolEval does; a reply whose failed attempts
    have scanned a few times its length is given up on (None), so parsing stays linear-time.
    """
    if not isinstance(text, str):
        return None
    text = _FENCE.sub("", text)
    budget = 4 * len(text) + 64 * _WINDOW  # characters failed attempts may scan
    for m in _OBJECT_START.finditer(text):
        value, reached = _object_at(text, m.start())
        if value is not None:
            return value
        budget -= max(reached - m.start(), _WINDOW)
        if budget < 0:
            log.debug("judge reply of %d characters: no JSON object found before giving up", len(text))
            return None
    return None


def _field(obj: dict, *names: str) -> Any:
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _reason(obj: dict) -> str:
    """The reply's ``reason`` as text; one that is not a string is shown as JSON (cut), never raising."""
    value = _field(obj, "reason")
    if isinstance(value, str) or not value:
        return value or ""
    try:
        return json.dumps(value, ensure_ascii=False)[:500]
    except (ValueError, TypeError, RecursionError):
        return "(unprintable reason)"


def parse_pass_reply(text: str | None) -> tuple[str, str] | None:
    """``(label, reason)`` from a pass-rate reply, or None when it is malformed."""
    obj = parse_json_reply(text)
    if obj is None:
        return None
    value = _field(obj, "answer_status", "status", "label")
    if not isinstance(value, str):
        return None
    label = {"solved": SOLVED, "unsolved": UNSOLVED, "unsure": UNSURE}.get(value.strip().strip(".").lower())
    if label is None:
        return None
    return label, _reason(obj)


def parse_preference_reply(text: str | None) -> tuple[str, str] | None:
    """``("A"|"B", reason)`` from a preference reply, or None when it is malformed."""
    obj = parse_json_reply(text)
    if obj is None:
        return None
    value = _field(obj, "preferred", "preference", "winner")
    if not isinstance(value, (str, int)):
        return None
    value = str(value).strip().strip(".").upper().removeprefix("ANSWER").strip()
    label = {"A": "A", "B": "B", "1": "A", "2": "B"}.get(value)
    if label is None:
        return None
    return label, _reason(obj)


# ----------------------------------------------------------------------------- rendering


def render_answer(answer: ConvertedBody, max_response_chars: int = 1024) -> str:
    """An answer as the judge reads it: numbered steps, then the final answer."""
    lines = []
    step = 0
    for node in answer_chain(answer):
        role = node.get("role")
        if role == "tool":
            call = tool_call(node) or {}
            step += 1
            if call.get("name") == FINISH_NAME:
                lines.append(f"Step {step}: Finish({call.get('arguments', '')})")
                continue
            response = str(call.get("response", ""))
            if len(response) > max_response_chars:
                response = response[:max_response_chars] + " …(cut)"
            lines.append(f"Step {step}: call {call.get('name', '')}({call.get('arguments', '')})")
            lines.append(f"  response: {response}")
        elif role == "assistant":
            step += 1
            lines.append(f"Step {step}: thought: {node.get('message', '')}")
    final = final_answer_text(answer)
    lines.append(f"Final answer: {final if final else '(none)'}")
    return "\n".join(lines)


def _sendable(text: str) -> str:
    """``text`` as UTF-8 can carry it: lone surrogates (a JSON ``\\ud83d`` cut from its pair) become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # fixes: such an answer made every request for it fail to encode
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def pass_messages(query: str, answer: ConvertedBody, max_response_chars: int = 1024) -> list[dict]:
    user = f"Query:\n{query}\n\nAssistant's solution:\n{render_answer(answer, max_response_chars)}"
    return [{"role": "system", "content": PASS_SYSTEM_PROMPT}, {"role": "user", "content": _sendable(user)}]


def preference_messages(
    query: str, a: ConvertedBody, b: ConvertedBody, max_response_chars: int = 1024
) -> list[dict]:
    user = (
        f"Query:\n{query}\n\n"
        f"=== Answer A ===\n{render_answer(a, max_response_chars)}\n\n"
        f"=== Answer B ===\n{render_answer(b, max_response_chars)}"
    )
    return [
        {"role": "system", "content": PREFERENCE_SYSTEM_PROMPT},
        {"role": "user", "content": _sendable(user)},
    ]


# ----------------------------------------------------------------------------- client


class Judge:
    """Thread-safe judge over a :class:`glpft.chat.ChatClient`, with tolerant reply parsing."""

    def __init__(self, config: JudgeConfig, client: httpx.Client | None = None):
        self.config = config
        self.client = ChatClient(
            config.base_url,
            config.api_keys,
            timeout=config.timeout,
            max_retries=config.max_retries,
            backoff=config.backoff,
            max_backoff=config.max_backoff,
            http_client=client,
            name="judge",
        )
        self._lock = threading.Lock()
        self.malformed = 0  # judge questions that ended malformed

    @property
    def requests(self) -> int:
        """HTTP requests sent (all attempts)."""
        return self.client.requests

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe_error(self, e: BaseException) -> str:
        """One line about an error met while judging one answer, without keys or URL credentials."""
        text = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        return self.client.redact(text)

    def complete(self, messages: list[dict]) -> str | None:
        """One chat completion's text (None when a 200 has no text); JudgeUnavailable when unusable."""
        params: dict[str, Any] = {}
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        if self.config.json_mode:
            params["response_format"] = {"type": "json_object"}
        try:
            body = self.client.chat(messages, self.config.model, **params)
        except EndpointUnavailable as e:  # the message is redacted: no key, no URL credentials
            raise JudgeUnavailable(str(e)) from None
        return content_of(body)  # a 200 without a usable body counts as a malformed reply

    def _ask(
        self, messages: list[dict], parse: Callable[[str | None], tuple[str, str] | None], fallback: str
    ) -> Verdict:
        text = None
        for _ in range(self.config.parse_retries + 1):
            text = self.complete(messages)
            parsed = parse(text)
            if parsed is not None:
                return Verdict(parsed[0], parsed[1])
        with self._lock:
            self.malformed += 1
        shown = (text or "")[:200].replace("\n", " ")
        return Verdict(fallback, f"malformed judge reply: {shown!r}", malformed=True)

    def judge_solved(self, query: str, answer: ConvertedBody) -> Verdict:
        """Solved / Unsolved / Unsure for one answer (Unsure when every reply was malformed)."""
        return self._ask(
            pass_messages(query, answer, self.config.max_response_chars), parse_pass_reply, UNSURE
        )

    def judge_preference(self, query: str, a: ConvertedBody, b: ConvertedBody) -> Verdict:
        """ "A" or "B" (the better answer as shown), or "tie" when every reply was malformed."""
        messages = preference_messages(query, a, b, self.config.max_response_chars)
        return self._ask(messages, parse_preference_reply, "tie")

"""The α-UMi protocol, reading side: model outputs, Finish calls and ToolBench function messages.

The only place these rules are written (DESIGN §3.3, §3.6, §3.7, §4.2); preprocessing, static
inference and metrics, the real-time agents and environment, the tool cache and ToolEval call them.
The original's fallbacks for text that is not JSON differ between its stages; each is kept (paper
parity) and chosen by a parameter. Nothing here raises on model output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glpft.prompts import EOS_TEXT, NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP, as_text

# --- generations ---------------------------------------------------------------------------------


def cut_eos(text: str) -> str:
    """A decoded generation up to its first ``</s>`` (the stop string of every role)."""
    idx = text.find(EOS_TEXT)
    return text[:idx] if idx != -1 else text


def clean_generation(text: str) -> str:
    """Post-process a decoded generation as the original: drop a leading ': ', empty/punctuation → 'none'."""
    if text.startswith(": "):
        text = text[2:]
    if text.strip() in ("", ".", ","):
        return "none"
    return text


@dataclass(frozen=True)
class PlannerDecision:
    """A planner output cut after its first marker; ``next`` is "caller", "conclusion" or "give up"."""

    thought: str
    next: str
    had_marker: bool


def parse_planner_output(text: str, no_marker_separator: str = "") -> PlannerDecision:
    """Cut a planner generation after its marker (give up, then conclusion, then caller).

    An output without any marker is routed to the caller with ``Next: caller.`` appended after
    ``no_marker_separator``: ``""`` on the static path and ``" "`` in real time (both paper parity).
    """
    for marker, role in ((NEXT_GIVE_UP, "give up"), (NEXT_CONCLUSION, "conclusion"), (NEXT_CALLER, "caller")):
        idx = text.find(marker)
        if idx != -1:
            return PlannerDecision(text[: idx + len(marker)], role, True)
    return PlannerDecision(text + no_marker_separator + NEXT_CALLER, "caller", False)


def parse_action(text: str) -> tuple[str, str]:
    """(action, action_input) of a caller text: the last ``Action:`` up to ``Action Input:``, and the
    text after the last ``Action Input:``; missing pieces give ``"none"`` and ``"{}"`` (paper parity)."""
    if "Action Input:" in text:
        action_input = text[text.rindex("Action Input:") + len("Action Input:") :].strip()
    else:
        action_input = "{}"
    if "Action:" in text:
        action = text[text.rindex("Action:") + len("Action:") :].strip()
        if "Action Input:" in action:
            action = action[: action.index("Action Input:")].strip()
    else:
        action = "none"
    return action, action_input


@dataclass(frozen=True)
class ParsedStep:
    """One scored step: plan is "give up", "finish" or "call"."""

    plan: str
    action: str | None = None
    action_input: str | None = None
    answer: str | None = None


def parse_step(text: str) -> ParsedStep:
    """Parse an α-UMi step string ``[assistant: ]thought</s>caller|conclusion: output`` (DESIGN §3.7;
    the original's real-time ``collab_agent_parser`` reads its steps with the same rules)."""
    if "Next: give up" in text:
        return ParsedStep("give up")
    if "Next: conclusion" in text:
        if "conclusion:" in text and "conclusion: " in text:
            answer = text[text.rindex("conclusion: ") + len("conclusion: ") :]
        else:
            answer = text
        return ParsedStep("finish", answer=answer.replace(EOS_TEXT, ""))
    # paper parity: the call text is what follows the first </s> ("assistant: …</s>caller: …");
    # a string without </s> (not produced by our pipeline) is parsed whole instead of crashing.
    parts = text.split(EOS_TEXT)
    call_text = parts[1] if len(parts) > 1 else text
    action, action_input = parse_action(call_text)
    return ParsedStep("call", action, action_input)


def parse_backbone_step(text: str) -> ParsedStep:
    """Parse a single-LLM (backbone) output: ``conclusion: give up`` / ``conclusion: …`` / a call."""
    if "conclusion: give up" in text:
        return ParsedStep("give up")
    if "conclusion: " in text:
        return ParsedStep("finish", answer=text[text.rindex("conclusion: ") + len("conclusion: ") :])
    action, action_input = parse_action(text)
    return ParsedStep("call", action, action_input)


def split_backbone_output(text: str) -> tuple[str, str | None, str | None]:
    """Split a backbone generation into (thought, kind, payload) for the real-time agent.

    kind is "give up", "conclusion" (payload = answer) or "caller" (payload = the ``Action: …`` text),
    or None when the text holds neither an action nor a conclusion.
    """
    if "conclusion: give up" in text:
        return text[: text.index("conclusion: give up")].strip(), "give up", None
    if "conclusion: " in text:
        idx = text.index("conclusion: ")
        return text[:idx].strip(), "conclusion", text[idx + len("conclusion: ") :].strip()
    if "Action:" in text:
        idx = text.index("Action:")
        return text[:idx].strip(), "caller", text[idx:].strip()
    return text.strip(), None, None


# --- Finish ----------------------------------------------------------------------------------------

FINISH_NAME = "Finish"
GIVE_ANSWER = "give_answer"
GIVE_UP_RETURN = "give_up_and_restart"
#: The Finish function ToolBench offers the model (real time) and lists in answer files.
FINISH_FUNCTION: dict[str, Any] = {
    "name": FINISH_NAME,
    "description": (
        "If you believe that you have obtained a result that can answer the task, please call this function "
        "to provide the final answer. Alternatively, if you recognize that you are unable to proceed with the "
        "task in the current state, call this function to restart. Remember: you must ALWAYS call this function "
        "at the end of your attempt, and the only part that will be shown to the user is the final answer, so it "
        "should contain sufficient information."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "return_type": {"type": "string", "enum": [GIVE_ANSWER, GIVE_UP_RETURN]},
            "final_answer": {
                "type": "string",
                "description": 'The final answer you want to give the user. You should have this field if "return_type"=="give_answer"',
            },
        },
        "required": ["return_type"],
    },
}


def finish_arguments(answer: str | None) -> str:
    """Finish's arguments as JSON text: give ``answer``, or give up and restart when it is None."""
    if answer is None:
        return json.dumps({"return_type": GIVE_UP_RETURN})
    return json.dumps({"return_type": GIVE_ANSWER, "final_answer": answer})


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: A Finish field the call did not carry (``null`` is a value, and the original treats it as one).
ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FinishCall:
    """What a Finish call asked for; a field the call did not carry is :data:`ABSENT`."""

    return_type: Any = ABSENT
    final_answer: Any = ABSENT

    @property
    def gives_up(self) -> bool:
        return self.return_type == GIVE_UP_RETURN


def _loads(text: str, strict: bool = True) -> Any:
    """``json.loads`` that reports any failure (bad syntax, deep nesting, huge integers) as None."""
    try:
        return json.loads(text, strict=strict)
    except (ValueError, RecursionError, TypeError):
        return None


def parse_finish(arguments: Any, fallback: str = "env", content: str | None = None) -> FinishCall:
    """Finish arguments (JSON text or an object) → :class:`FinishCall`; never raises.

    Text that is not a JSON object is searched for substrings, with the original's rule of each stage:
    ``fallback="env"`` (the real-time environment: ``"return_type": "…"`` and ``"final_answer": "…"``)
    or ``"stage2"`` (preprocessing: any mention of give-up, else the text after ``"final_answer": ``,
    else the assistant's ``content``, else ``"none"``; the answer is always text there).
    """
    if fallback not in ("env", "stage2"):
        raise ValueError(f"fallback must be 'env' or 'stage2', not {fallback!r}")
    if isinstance(arguments, Mapping):
        data: Any = dict(arguments)
    elif isinstance(arguments, str):
        data = _loads(arguments, strict=fallback == "stage2")  # paper parity: env parses with strict=False
    else:
        data = None
    if fallback == "stage2":
        if isinstance(data, dict) and "return_type" in data:
            if data["return_type"] == GIVE_UP_RETURN:
                return FinishCall(GIVE_UP_RETURN)
            return FinishCall(GIVE_ANSWER, as_text(data.get("final_answer", "none")))
        # fixes: dict-typed arguments crashed this fallback in the original.
        text = arguments if isinstance(arguments, str) else _dumps(arguments)
        if GIVE_UP_RETURN in text:
            return FinishCall(GIVE_UP_RETURN)
        key = '"final_answer": '
        if key in text:
            return FinishCall(GIVE_ANSWER, text[text.index(key) + len(key) :].strip().strip("}").strip('"'))
        return FinishCall(GIVE_ANSWER, content if content is not None else "none")
    if isinstance(data, dict):
        return FinishCall(data.get("return_type", ABSENT), data.get("final_answer", ABSENT))
    text = arguments if isinstance(arguments, str) else _dumps(arguments)
    return_type = final_answer = ABSENT
    marker = '"return_type": "'
    if marker in text:
        for choice in (GIVE_ANSWER, GIVE_UP_RETURN):
            if f'{marker}{choice}"' in text:
                return_type = choice
                break
        else:
            start = text.find(marker) + len(marker)
            return_type = text[start : text.find('",', start)]
    marker = '"final_answer": "'
    if marker in text:
        final_answer = text[text.find(marker) + len(marker) :]
    return FinishCall(return_type, final_answer)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        return str(value)


# --- function messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionContent:
    """A tool reply as recorded in a function message: its ``error`` and ``response`` values."""

    error: Any
    response: Any


def _decode_cut_string(text: str, truncated: bool) -> str:
    """Decode a JSON string body cut off anywhere (observations were cut to 1024 chars + "...")."""
    if truncated and text.endswith("..."):
        text = text[:-3]
    for cut in range(len(text), max(len(text) - 8, -1), -1):
        value = _loads('"' + text[:cut] + '"', strict=False)
        if isinstance(value, str):
            return value
    return text


def parse_function_content(content: Any, fallback: str = "raw") -> FunctionContent | None:
    """``{"error", "response"}`` of a function message's content (a JSON object or its text).

    Content that is not such JSON falls back on its text: ``"raw"`` (preprocessing, paper parity) takes
    everything after ``"response":`` verbatim; ``"decode"`` (the tool cache) decodes the JSON string
    after ``"response": "`` even when it was truncated, and the error before it. None when nothing is found.
    """
    if isinstance(content, Mapping):
        return FunctionContent(content.get("error", ""), content.get("response", ""))
    if not isinstance(content, str):
        return None
    data = _loads(content, strict=fallback == "raw")
    if isinstance(data, dict) and "response" in data:
        return FunctionContent(data.get("error", ""), data["response"])
    if fallback == "raw":
        key = '"response":'
        return FunctionContent("", content[content.index(key) + len(key) :]) if key in content else None
    key = '"response": "'
    if key not in content:
        return None
    error, ekey, sep = "", '{"error": "', '", "response": "'
    if content.startswith(ekey) and sep in content:
        error = _decode_cut_string(content[len(ekey) : content.index(sep)], truncated=False)
    return FunctionContent(
        error, _decode_cut_string(content[content.index(key) + len(key) :], truncated=True)
    )


def observation_from_content(content: Any) -> str:
    """The stage-2 observation turn of a function message: its ``response`` as text, else ``""``."""
    parsed = parse_function_content(content, fallback="raw")
    return as_text(parsed.response) if parsed is not None else ""

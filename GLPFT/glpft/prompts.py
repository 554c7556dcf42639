"""The α-UMi protocol: role templates, tool docs, history text, role markers and output parsers.

This is the only place these strings are spelled. Preprocessing, training, static inference,
metrics and the real-time agent all import from here, so a prompt can never drift between stages
(the published checkpoints were trained on exactly these bytes; DESIGN.md §3.4).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- templates (verbatim from the paper's code, typos included: "assess", "Base on") -------------

TEMPLATES: dict[str, str] = {
    "toolbench_backbone": (
        "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
        "You should answer the action of next step in the following format:\n"
        "The thought to solve the question,\n"
        "Action: the name of api that should be called in this step, should be exactly in [{tool_names}],\n"
        "Action Input: the api call request.\n"
        "Once you think the question is finished, output conclusion: the final answer of the question "
        "or give up if you think you cannot answer this question.\n"
    ),
    "toolbench_planner": (
        "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
        "You are the assistant to plan what to do next and whether is caller's or conclusion's turn to answer.\n"
        "Answer with a following format:\n"
        "The thought of the next step, followed by Next: caller or conclusion or give up."
    ),
    "toolbench_caller": (
        "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
        "The thought of this step is:\n{thought}\n"
        "Base on the thought make an api call in the following format:\n"
        "Action: the name of api that should be called in this step, should be exactly in [{tool_names}],\n"
        "Action Input: the api call request."
    ),
    "toolbench_summarizer": "Make a conclusion based on the conversation history:\n{history}",
}

#: Default template of each role (the paper's `*_prompt_type` values).
ROLE_TEMPLATE = {
    "backbone": "toolbench_backbone",
    "planner": "toolbench_planner",
    "caller": "toolbench_caller",
    "summarizer": "toolbench_summarizer",
}

#: Text appended after the filled template: the speaker tag the model continues from.
ROLE_SUFFIX = {
    "backbone": " assistant: ",
    "planner": " assistant: ",
    "caller": " caller: ",
    "summarizer": " conclusion: ",
}

#: Prefix of the model input at training time (DESIGN §3.5); the original omits it at inference.
TRAIN_PREFIX = "system: "

EOS_TEXT = "</s>"

# Role markers the planner ends its thought with.
NEXT_CALLER = "Next: caller."
NEXT_CONCLUSION = "Next: conclusion."
NEXT_GIVE_UP = "Next: give up."
#: Order in which markers are searched when routing a planner output (paper parity).
NEXT_MARKERS = (NEXT_GIVE_UP, NEXT_CONCLUSION, NEXT_CALLER)

#: Conversation speakers of stage-2 data (DESIGN §3.3).
ROLES = ("user", "assistant", "caller", "observation", "conclusion")

#: ToolBench marks a caller turn that named a function that does not exist with this string.
HALLUCINATED_CALL = "invalid_hallucination_function_name"


def caller_turn(action: str, action_input: str) -> str:
    """The caller's text for one call (the inverse of :func:`parse_action`)."""
    return "Action: " + action + "\nAction Input: " + action_input


def get_template(name: str) -> str:
    """Look a template up by its paper name (e.g. ``toolbench_planner``) with a one-line error."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt type {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


# --- serialisation ---------------------------------------------------------------------------


def tool_doc(tools: Sequence[Mapping[str, Any]]) -> str:
    """`{doc}`: one ``json.dumps(tool)`` line per tool (Python defaults: ASCII, ", " and ": ")."""
    return "".join(json.dumps(t) + "\n" for t in tools)


def tool_names(tools: Sequence[Mapping[str, Any]]) -> str:
    """`{tool_names}`: the tools' ``Name`` fields joined by ", "."""
    return ", ".join(t["Name"] for t in tools)


def render_turn(role: str, value: str) -> str:
    """One history turn: ``role: value</s>``, except observations, which carry no ``</s>``."""
    if role == "observation":
        return "observation: " + value
    return role + ": " + value + EOS_TEXT


def history_text(turns: Iterable[Mapping[str, str]]) -> str:
    """History string of a list of ``{"from", "value"}`` turns (unknown roles are skipped, as the paper)."""
    return "".join(render_turn(t["from"], t["value"]) for t in turns if t["from"] in ROLES)


class PromptBuilder:
    """Fills one template for one tool set; the tool part is substituted once and reused per step.

    Substitution order is the paper's ({doc}, {tool_names}, then {history}, then {thought}) so that
    a tool description containing a placeholder is treated exactly as the original did.
    """

    def __init__(self, template: str, tools: Sequence[Mapping[str, Any]]):
        self.base = template.replace("{doc}", tool_doc(tools)).replace("{tool_names}", tool_names(tools))

    def build(self, history: str, thought: str | None = None) -> str:
        text = self.base.replace("{history}", history)
        if thought is not None:
            text = text.replace("{thought}", thought)
        return text


def build_prompt(
    role: str,
    tools: Sequence[Mapping[str, Any]],
    history: str,
    thought: str | None = None,
    template: str | None = None,
) -> str:
    """Model input for one role: filled template + the role's speaker tag (no training prefix)."""
    tpl = get_template(template or ROLE_TEMPLATE[role])
    return PromptBuilder(tpl, tools).build(history, thought) + ROLE_SUFFIX[role]


# --- output parsers --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannerDecision:
    """A planner output cut after its first marker; ``next`` is "caller", "conclusion" or "give up"."""

    thought: str
    next: str
    had_marker: bool


def parse_planner_output(text: str) -> PlannerDecision:
    """Cut a planner generation after its marker (give up, then conclusion, then caller).

    paper parity: an output without any marker is routed to the caller with ``Next: caller.`` appended
    directly (no separator), exactly as the original static pipeline does.
    """
    for marker, role in ((NEXT_GIVE_UP, "give up"), (NEXT_CONCLUSION, "conclusion"), (NEXT_CALLER, "caller")):
        idx = text.find(marker)
        if idx != -1:
            return PlannerDecision(text[: idx + len(marker)], role, True)
    return PlannerDecision(text + NEXT_CALLER, "caller", False)


def clean_generation(text: str) -> str:
    """Post-process a decoded generation as the original: drop a leading ': ', empty/punctuation → 'none'."""
    if text.startswith(": "):
        text = text[2:]
    if text.strip() in ("", ".", ","):
        return "none"
    return text


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
    """Parse an α-UMi reference or prediction string (DESIGN §3.7, multi-agent rules)."""
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


#: Single-LLM (backbone) spellings of the two non-call routes.
BACKBONE_GIVE_UP = "\nconclusion: give up."
BACKBONE_CONCLUSION = "\nconclusion: "
#: Prefix of α-UMi prediction strings in predictions.json (sic: the original's typo, kept for parity).
PRED_PREFIX = "asssitant: "


def backbone_target(conv: Sequence[Mapping[str, str]], j: int) -> str:
    """The single-LLM target of assistant turn ``j`` of a stage-2 conversation (DESIGN §3.4):
    thought without its marker + ``"\n" + caller value``, ``"\nconclusion: " + answer`` or
    ``"\nconclusion: give up."``; an assistant turn with no route keeps its value."""
    value = conv[j]["value"]
    nxt = conv[j + 1] if j + 1 < len(conv) else None
    if NEXT_GIVE_UP in value:
        return strip_marker(value, NEXT_GIVE_UP) + BACKBONE_GIVE_UP
    if nxt is not None and nxt["from"] == "caller":
        return strip_marker(value, NEXT_CALLER) + "\n" + nxt["value"]
    if nxt is not None and nxt["from"] == "conclusion":
        return strip_marker(value, NEXT_CONCLUSION) + BACKBONE_CONCLUSION + nxt["value"]
    return value


def strip_marker(value: str, marker: str) -> str:
    """A planner thought without the given ``Next: …`` marker, stripped (the backbone's thought).

    paper parity: only the marker of the step's own route is removed.
    """
    return value.replace(marker, "").strip()

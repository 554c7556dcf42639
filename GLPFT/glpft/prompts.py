"""The α-UMi protocol, writing side: templates, tool entries, history text, role prompts, observations.

This is the only place these rules are spelled. Preprocessing (training inputs), static inference,
the real-time agents, the tool cache and ToolEval all call these functions; the published checkpoints
were trained on exactly these bytes (DESIGN.md §3.4, §3.6, §4.2). Where two paths differ on purpose,
the difference is a parameter here, never a copy:

- ``speaker``: the planner thought in caller/summarizer histories is ``planner: `` on the static path
  and ``assistant: `` in training and in real time (paper parity);
- ``thought_first``: inference substitutes ``{thought}`` before ``{history}``, training after;
- ``prefix``: training inputs start with ``"system: "``; the original's inference omits it;
- history styles: ``full`` (planner, summarizer), ``caller`` (hallucinated calls left out, training
  only) and ``backbone`` (merged thought + action turns);
- observation styles: ``alpha_umi`` (real time, JSON-encoded once), ``training`` (bare text).

The reading side (output parsers, Finish arguments, function messages) is :mod:`glpft.parsing`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glpft.formats import FormatError, Tool, Turn, require

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

#: The three collaborating roles of α-UMi, in the order one step runs them.
AGENT_ROLES = ("planner", "caller", "summarizer")
#: The four models GLPFT trains (stage 1 backbone, then the three roles) — also the four datasets.
MODEL_ROLES = ("backbone", *AGENT_ROLES)

#: Default template of each model role (the paper's ``*_prompt_type`` values).
ROLE_TEMPLATE = {role: f"toolbench_{role}" for role in MODEL_ROLES}

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

#: Speakers of stage-2 conversations (DESIGN §3.3); turns of any other speaker are not rendered.
SPEAKERS = ("user", "assistant", "caller", "observation", "conclusion")
#: Speaker of the planner thought in caller/summarizer histories on the static path (paper parity).
STATIC_PLANNER_SPEAKER = "planner"

#: ToolBench marks a caller turn that named a function that does not exist with this string.
HALLUCINATED_CALL = "invalid_hallucination_function_name"

#: Single-LLM (backbone) spellings of the two non-call routes.
BACKBONE_GIVE_UP = "\nconclusion: give up."
BACKBONE_CONCLUSION = "\nconclusion: "
#: Prefix of α-UMi prediction strings in predictions.json (sic: the original's typo, kept for parity).
PRED_PREFIX = "asssitant: "


def get_template(name: str) -> str:
    """Look a template up by its paper name (e.g. ``toolbench_planner``) with a one-line error."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt type {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


def as_text(value: Any) -> str:
    """A value as conversation text: strings pass through, anything else is JSON-encoded (ASCII)."""
    return value if isinstance(value, str) else json.dumps(value)


# --- tools -------------------------------------------------------------------------------------


def tool_entry(function: Mapping[str, Any], where: str) -> Tool:
    """An OpenAI function schema → α-UMi prompt tool entry (name[-64:], description[:256], inputs;
    DESIGN §3.2). ``where`` names the record in errors."""
    name = require(function, "name", str, where)
    description = function.get("description") or ""
    params = function.get("parameters") or {}
    properties = (params.get("properties") or {}) if isinstance(params, dict) else {}
    if not isinstance(properties, dict):
        raise FormatError(
            f"{where}: function '{name}' has non-object parameters.properties", "malformed function"
        )
    inputs: dict[str, str] = {}
    for arg, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        arg_type = str(spec.get("type", "string"))
        if "description" in spec:
            inputs[arg] = arg_type + ", " + str(spec["description"])[-256:]
        else:
            inputs[arg] = arg_type
    return {"Name": name[-64:], "function": str(description)[:256], "input": inputs}


def tool_doc(tools: Sequence[Mapping[str, Any]]) -> str:
    """`{doc}`: one ``json.dumps(tool)`` line per tool (Python defaults: ASCII, ", " and ": ")."""
    return "".join(json.dumps(t) + "\n" for t in tools)


def tool_names(tools: Sequence[Mapping[str, Any]]) -> str:
    """`{tool_names}`: the tools' ``Name`` fields joined by ", "."""
    return ", ".join(t["Name"] for t in tools)


# --- conversation turns and history text --------------------------------------------------------


def caller_turn(action: str, action_input: str) -> str:
    """The caller's text for one call (the inverse of :func:`glpft.parsing.parse_action`)."""
    return "Action: " + action + "\nAction Input: " + action_input


def render_turn(speaker: str, value: str) -> str:
    """One history turn: ``speaker: value</s>``, except observations, which carry no ``</s>``."""
    if speaker == "observation":
        return "observation: " + value
    return speaker + ": " + value + EOS_TEXT


def history_text(turns: Iterable[Mapping[str, str]]) -> str:
    """History string of ``{"from", "value"}`` turns (turns of unknown speakers are skipped)."""
    return "".join(render_turn(t["from"], t["value"]) for t in turns if t["from"] in SPEAKERS)


def strip_marker(value: str, marker: str) -> str:
    """A planner thought without the given ``Next: …`` marker, stripped (the backbone's thought).

    paper parity: only the marker of the step's own route is removed.
    """
    return value.replace(marker, "").strip()


def backbone_target(conv: Sequence[Mapping[str, str]], j: int) -> str:
    """The single-LLM text of assistant turn ``j`` of a stage-2 conversation (DESIGN §3.4):
    thought without its marker + ``"\\n" + caller value``, ``"\\nconclusion: " + answer`` or
    ``"\\nconclusion: give up."``; an assistant turn with no route keeps its value."""
    value = conv[j]["value"]
    nxt = conv[j + 1] if j + 1 < len(conv) else None
    if NEXT_GIVE_UP in value:
        return strip_marker(value, NEXT_GIVE_UP) + BACKBONE_GIVE_UP
    if nxt is not None and nxt["from"] == "caller":
        return strip_marker(value, NEXT_CALLER) + "\n" + nxt["value"]
    if nxt is not None and nxt["from"] == "conclusion":
        return strip_marker(value, NEXT_CONCLUSION) + BACKBONE_CONCLUSION + nxt["value"]
    return value


HISTORY_STYLES = ("full", "caller", "backbone")


def history_prefixes(conv: Sequence[Mapping[str, str]], style: str = "full") -> list[str]:
    """``out[i]`` = the history text of ``conv[:i]`` (``len(conv) + 1`` entries), in one pass.

    - ``full``: every turn (planner and summarizer prompts; static inference; real time);
    - ``caller``: caller turns naming a hallucinated function are left out (training data only);
    - ``backbone``: each assistant turn becomes its :func:`backbone_target`; caller and conclusion
      turns are not repeated (stage 1 training and the single-LLM baseline).
    """
    if style not in HISTORY_STYLES:
        raise ValueError(f"history style must be one of {HISTORY_STYLES}, not {style!r}")
    out, text = [""], ""
    for j, turn in enumerate(conv):
        speaker, value = turn["from"], turn["value"]
        if style == "backbone":
            if speaker == "assistant":
                text += render_turn("assistant", backbone_target(conv, j))
            elif speaker in ("user", "observation"):
                text += render_turn(speaker, value)
        elif speaker in SPEAKERS and not (
            style == "caller" and speaker == "caller" and HALLUCINATED_CALL in value
        ):
            text += render_turn(speaker, value)
        out.append(text)
    return out


def backbone_conversation(conv: Sequence[Mapping[str, str]]) -> list[Turn]:
    """The single-LLM view of a stage-2 conversation: merged assistant turns, no caller/conclusion."""
    out: list[Turn] = []
    for j, turn in enumerate(conv):
        if turn["from"] == "assistant":
            out.append({"from": "assistant", "value": backbone_target(conv, j)})
        elif turn["from"] in ("user", "observation"):
            out.append({"from": turn["from"], "value": turn["value"]})
    return out


def step_text(thought: str, speaker: str, output: str) -> str:
    """``thought</s>speaker: output``: a planner thought joined with the caller's or summarizer's
    output, as the original writes one α-UMi step (real-time message value, static predictions)."""
    return thought + EOS_TEXT + speaker + ": " + output


# --- prompts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A model input as ``head + history + tail`` (the history part can be shortened on its own)."""

    head: str
    history: str
    tail: str

    @property
    def text(self) -> str:
        return self.head + self.history + self.tail


class PromptBuilder:
    """Fills one template for one tool set; the tool part is substituted once and reused per step.

    Substitution order is the paper's: ``{doc}``, ``{tool_names}``, then ``{history}`` and
    ``{thought}`` — thought first at inference (``thought_first=True``), last in training data.
    """

    def __init__(self, template: str, tools: Sequence[Mapping[str, Any]]):
        self.base = template.replace("{doc}", tool_doc(tools)).replace("{tool_names}", tool_names(tools))

    def build(self, history: str, thought: str | None = None, thought_first: bool = False) -> str:
        if thought is not None and thought_first:
            return self.base.replace("{thought}", thought).replace("{history}", history)
        text = self.base.replace("{history}", history)
        return text.replace("{thought}", thought) if thought is not None else text

    def pieces(self, history: str, thought: str | None = None, thought_first: bool = True) -> Prompt:
        """:meth:`build` as (head, history, tail); the history is a piece of its own only when the
        filled template holds ``{history}`` exactly once and no ``{thought}`` is filled after it."""
        base = self.base.replace("{thought}", thought) if thought is not None and thought_first else self.base
        head, sep, tail = base.partition("{history}")
        if sep and "{history}" not in tail and (thought is None or thought_first):
            return Prompt(head, history, tail)
        return Prompt(self.build(history, thought, thought_first), "", "")


class RolePrompts:
    """The model inputs of every role for one tool set (each template filled with the tools once).

    ``history`` is the conversation text before the step. For the caller and the summarizer,
    ``thought`` is the planner's (cut) output: it is added to the history as a ``speaker`` turn and
    fills ``{thought}``. Inference fills ``{thought}`` first (``thought_first=True``); training data
    fills the caller's after the history and never the summarizer's (paper parity, both). ``prefix``
    goes before the text (:data:`TRAIN_PREFIX` or ``""``); the role's speaker tag ends it.
    ``templates`` maps roles to prompt-type names (default: each role's paper template).
    """

    def __init__(
        self,
        tools: Sequence[Mapping[str, Any]],
        templates: Mapping[str, str] | None = None,
        *,
        speaker: str = "assistant",
        thought_first: bool = True,
        prefix: str = "",
    ):
        self.tools = tools
        self.templates = {**ROLE_TEMPLATE, **(templates or {})}
        self.speaker, self.thought_first, self.prefix = speaker, thought_first, prefix
        self._builders: dict[str, PromptBuilder] = {}

    def builder(self, role: str) -> PromptBuilder:
        if role not in self._builders:
            self._builders[role] = PromptBuilder(get_template(self.templates[role]), self.tools)
        return self._builders[role]

    def build(self, role: str, history: str, thought: str | None = None) -> Prompt:
        if role in ("caller", "summarizer"):
            if thought is None:
                raise ValueError(f"the {role} prompt needs the planner's thought")
            history = history + render_turn(self.speaker, thought)
            if role == "summarizer" and not self.thought_first:
                thought = None
        else:
            thought = None
        p = self.builder(role).pieces(history, thought, self.thought_first)
        return Prompt(self.prefix + p.head, p.history, p.tail + ROLE_SUFFIX[role])


def role_prompt(
    role: str,
    tools: Sequence[Mapping[str, Any]],
    history: str,
    thought: str | None = None,
    *,
    template: str | None = None,
    **options: Any,
) -> Prompt:
    """The model input of ``role`` for one step (see :class:`RolePrompts` for ``speaker``,
    ``thought_first`` and ``prefix``); ``template`` is a prompt-type name."""
    templates = {role: template} if template else None
    return RolePrompts(tools, templates, **options).build(role, history, thought)


def planner_prompt(tools: Sequence[Mapping[str, Any]], history: str, prefix: str = "", **kw: Any) -> str:
    """The planner's input: tool docs + history, continued from ``" assistant: "``."""
    return role_prompt("planner", tools, history, prefix=prefix, **kw).text


def caller_prompt(
    tools: Sequence[Mapping[str, Any]], history: str, thought: str, prefix: str = "", **kw: Any
) -> str:
    """The caller's input: history + the planner's thought, continued from ``" caller: "``."""
    return role_prompt("caller", tools, history, thought, prefix=prefix, **kw).text


def summarizer_prompt(
    tools: Sequence[Mapping[str, Any]], history: str, thought: str, prefix: str = "", **kw: Any
) -> str:
    """The summarizer's input: history + the planner's thought, continued from ``" conclusion: "``."""
    return role_prompt("summarizer", tools, history, thought, prefix=prefix, **kw).text


def backbone_prompt(tools: Sequence[Mapping[str, Any]], history: str, prefix: str = "", **kw: Any) -> str:
    """The single LLM's input: tool docs + backbone-style history, continued from ``" assistant: "``."""
    return role_prompt("backbone", tools, history, prefix=prefix, **kw).text


# --- observations and the context budget --------------------------------------------------------------

OBSERVATION_STYLES = ("alpha_umi", "training", "toolbench")


def observation_text(response: Any, error: Any = "", style: str = "alpha_umi") -> str:
    """The observation turn's text for a tool reply ``{"error", "response"}`` (DESIGN §4.2).

    - ``alpha_umi`` (real time, paper parity): ``json.dumps`` of the response *as received* — a string
      becomes a JSON string, an object or list is dumped once; an empty response becomes
      ``json.dumps({"message": error})``. Never encoded twice.
    - ``training``: the bare response text, as preprocessing writes observation turns (§3.3).
    - ``toolbench``: ``{"error", "response"}`` as in ToolBench's trajectories.
    """
    if style == "toolbench":
        return json.dumps({"error": error, "response": response})
    if style == "training":
        return as_text(response) if response != "" else json.dumps({"message": error})
    if style == "alpha_umi":
        return json.dumps(response) if response != "" else json.dumps({"message": error})
    raise ValueError(f"observation style must be one of {OBSERVATION_STYLES}, not {style!r}")


#: Real-time context: the original's generate_stream keeps ``context - max_new_tokens - 8`` prompt ids.
REALTIME_CONTEXT = 4096
CONTEXT_MARGIN = 8


def prompt_budget(context_length: int = REALTIME_CONTEXT, max_new_tokens: int = 512) -> int:
    """How many prompt ids fit in real time: ``context_length - max_new_tokens - 8`` (at least 1)."""
    return max(1, context_length - max_new_tokens - CONTEXT_MARGIN)


def truncate_ids(ids: list[int], budget: int, bos_id: int | None = None, keep_bos: bool = False) -> list[int]:
    """The last ``budget`` ids of an over-long prompt (paper parity: BOS may be cut like any id).

    ``keep_bos=True`` keeps a leading ``bos_id`` and fills the rest of the budget from the end.
    """
    if len(ids) <= budget:
        return ids
    if keep_bos and bos_id is not None and ids and ids[0] == bos_id and budget > 1:
        return [bos_id] + ids[len(ids) - (budget - 1) :]
    return ids[len(ids) - budget :]

"""Static evaluation steps (DESIGN §3.6): the gold steps of a test set, their prompts and routing.

Every assistant turn with a ``Next:`` marker is one step, predicted with the gold history. A
:class:`StaticStep` carries the step's typed state from the planner prompt through routing to the
prediction; :meth:`StaticStep.record` is its row of ``predictions.json`` in the original's fields and
key order (``dispath``, ``asssitant`` sic). Prompts come from :mod:`glpft.prompts`: the static path's
documented differences are its parameters (``planner: `` speaker, ``{thought}`` filled first, no
``system: `` prefix unless asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from glpft import prompts as P
from glpft.data import expand_data_paths
from glpft.formats import FormatError, Tool, Turn, check_stage2, iter_json_list
from glpft.parsing import parse_planner_output


@dataclass
class StaticStep:
    """One gold step. ``index`` is its position in the test set, ``group`` its trajectory."""

    index: int
    group: int
    tools: list[Tool]
    instruction: str
    history: list[Turn]
    dispatch: str  # history text before the step
    prompt: P.Prompt  # planner (or backbone) input
    reference: str
    planner_output: str | None = None  # cleaned generation
    route: str | None = None  # "caller", "conclusion" or "give up"
    thought: str | None = None  # planner output cut after its marker
    next_prompt: P.Prompt | None = None  # caller or summarizer input
    prediction: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def next_role(self) -> str | None:
        return {"caller": "caller", "conclusion": "summarizer"}.get(self.route or "")

    def record(self) -> dict[str, Any]:
        """The step's ``predictions.json`` row (the original's keys, in its order)."""
        row: dict[str, Any] = {
            "tools": self.tools,
            "instruction": self.instruction,
            "history": self.history,
            "dispath": self.dispatch,
            "model_input": self.prompt.text,
            "reference": self.reference,
            "predictions": self.prediction,
        }
        if self.route in ("caller", "conclusion"):
            row["planner_prediction"] = self.thought
            key = "model_input_for_caller" if self.route == "caller" else "model_input_for_summarizer"
            row[key] = self.next_prompt.text if self.next_prompt else None
        return row


def read_test_records(data_path: str, limit: int = -1) -> list[dict[str, Any]]:
    """Stage-2 records (``tools``, ``instruction``, ``conversations``) of every file in ``data_path``."""
    records: list[dict[str, Any]] = []
    for path in expand_data_paths(data_path):
        for k, rec in enumerate(iter_json_list(path)):
            records.append(check_stage2(rec, f"{path}: record {k}"))
            if 0 < limit <= len(records):
                return records
    return records


def _has_marker(value: str) -> bool:
    return any(m in value for m in P.NEXT_MARKERS)


def planner_reference(conv: Sequence[Turn], j: int, where: str = "record") -> str:
    """``assistant: V</s>next: W</s>`` for caller / conclusion steps, the bare value for give-up."""
    value = conv[j]["value"]
    # paper parity: the original tests "Next: caller" without the final dot here
    if P.NEXT_CALLER.rstrip(".") in value or P.NEXT_CONCLUSION in value:
        if j + 1 >= len(conv):
            raise FormatError(f"{where}: conversations[{j}] routes to a next turn but is the last turn")
        nxt = conv[j + 1]
        return P.render_turn("assistant", value) + P.render_turn(nxt["from"], nxt["value"])
    return value


def build_steps(
    records: Sequence[dict[str, Any]],
    mode: str = "multi_agent",
    prompt_type: str | None = None,
    prefix: str = "",
) -> list[StaticStep]:
    """One step per marked assistant turn. ``mode="multi_agent"``: planner prompt over the full
    history, reference = the gold step; ``"backbone"``: the single-LLM prompt over the backbone
    history, reference = the backbone target."""
    role = "planner" if mode == "multi_agent" else "backbone"
    templates = {role: prompt_type} if prompt_type else None
    steps: list[StaticStep] = []
    for r, rec in enumerate(records):
        conv = rec["conversations"]
        prompts = P.RolePrompts(rec["tools"], templates, prefix=prefix)
        histories = P.history_prefixes(conv, "full" if role == "planner" else "backbone")
        for j, turn in enumerate(conv):
            if turn["from"] != "assistant" or not _has_marker(turn["value"]):
                continue
            if role == "planner":
                reference = planner_reference(conv, j, f"record {r}")
            else:
                reference = P.backbone_target(conv, j)
            steps.append(
                StaticStep(
                    index=len(steps),
                    group=r,
                    tools=rec["tools"],
                    instruction=rec["instruction"],
                    history=conv[:j],
                    dispatch=histories[j],
                    prompt=prompts.build(role, histories[j]),
                    reference=reference,
                )
            )
    return steps


def route(
    step: StaticStep, planner_output: str, templates: dict[str, str] | None = None, prefix: str = ""
) -> str:
    """Cut the planner output, choose the next role and build its prompt; returns the route."""
    decision = parse_planner_output(planner_output)  # paper parity: no marker → "Next: caller." glued on
    step.planner_output, step.route, step.thought = planner_output, decision.next, decision.thought
    if decision.next == "give up":
        step.prediction = decision.thought
        return step.route
    prompts = P.RolePrompts(step.tools, templates, speaker=P.STATIC_PLANNER_SPEAKER, prefix=prefix)
    step.next_prompt = prompts.build(step.next_role, step.dispatch, decision.thought)
    return step.route


def prediction_string(route_: str, thought: str, output: str) -> str:
    """The α-UMi prediction of one step (``asssitant: `` sic)."""
    if route_ == "give up":
        return thought
    speaker = "caller" if route_ == "caller" else "conclusion"
    return P.PRED_PREFIX + P.step_text(thought, speaker, output)

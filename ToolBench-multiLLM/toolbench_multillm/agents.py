"""Real-time agents: each turns a query, its tools and the steps so far into the next action.

- :class:`AlphaUmiAgent` — the paper's collaborative agent (``collab_agent_v3``): the planner writes a
  thought ending in a ``Next: …`` marker, then the caller writes the API call or the summarizer writes
  the final answer. Prompts are exactly the original agent's (``glpft.prompts``; DESIGN §3.6, §4.2).
- :class:`BackboneAgent` — the single-LLM baseline: thought + action, or ``conclusion: …``.
- :class:`OpenAIAgent` — a function-calling chat model at any OpenAI-compatible base URL (baseline).

Agents only *decide*; the search (``search.py``) executes the action in the environment. Each action
carries the conversation turns it adds (typed; the next prompt is built from them, never re-parsed)
and a record of every prompt it sent. A model output never makes an agent raise: garbage becomes a
call to a function named ``none`` (the environment answers status 1, "no such function").
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from glpft.chat import ChatClient, message_of
from glpft.formats import Turn
from glpft.parsing import (
    FINISH_NAME,
    clean_generation,
    cut_eos,
    finish_arguments,
    parse_action,
    parse_planner_output,
    parse_step,
    split_backbone_output,
)
from glpft.prompts import NEXT_MARKERS, RolePrompts, history_text, step_text, tool_doc

log = logging.getLogger(__name__)

#: Planner retries on an empty generation (paper parity: the original tried up to 5 times).
PLANNER_RETRIES = 5


@dataclass
class Completion:
    """One generation: its text (stop string removed) and token counts when the generator knows them.

    ``prompt_tokens`` is what the model was fed (after left truncation), ``dropped_tokens`` what the
    context budget cut off the front of the prompt.
    """

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    dropped_tokens: int = 0
    changed_by_grammar: bool | None = None  # None: unconstrained, or the server does not say


class Generator(Protocol):
    """Text in, text out: one completion (a ``str`` or a :class:`Completion`) per prompt.

    Generators that support constrained decoding also take ``grammars=`` (one EBNF text or None per
    prompt, :mod:`glpft.constraints`); it is passed only when the agent constrains a role.
    """

    def generate(self, prompts: list[str]) -> list[str | Completion]: ...


class AgentError(RuntimeError):
    """The agent could not produce a step at all (e.g. the chat endpoint kept failing)."""


@dataclass
class Task:
    """What an agent sees of a query: its text, OpenAI schemas (Finish last) and α-UMi tool entries."""

    query: str
    functions: list[dict[str, Any]]
    prompt_tools: list[dict[str, Any]]
    #: turns after the last step (e.g. a user's follow-up in a chat), before the next prompt
    turns_after: list[Turn] = field(default_factory=list)


def required_inputs(task: Task) -> dict[str, list[str]]:
    """Tool name → the input keys of its prompt entry that its function schema requires.

    Schemas name parameters as the tool service does (``change_name(standardize(key))``), prompt
    entries as the tool docs do; a key counts as required under either spelling.
    """
    from toolbench_multillm.tools import change_name, standardize

    wanted: dict[str, set[str]] = {}
    for f in task.functions:
        params = f.get("parameters") if isinstance(f, dict) else None
        names = params.get("required") if isinstance(params, dict) else None
        if isinstance(f.get("name"), str) and isinstance(names, list):
            wanted[f["name"]] = {n for n in names if isinstance(n, str)}
    out: dict[str, list[str]] = {}
    for entry in task.prompt_tools:
        need = wanted.get(entry.get("Name"))
        inputs = entry.get("input")
        if need and isinstance(inputs, dict):
            keys = [k for k in inputs if k in need or change_name(standardize(k)) in need]
            if keys:
                out[entry["Name"]] = keys
    return out


@dataclass(frozen=True)
class PromptRecord:
    """One model input an agent sent: the role, the exact text, and the tokens fed / cut off."""

    role: str
    text: str
    tokens: int | None = None
    dropped_tokens: int = 0


@dataclass
class Action:
    """One agent step: ``thought`` (None when the model wrote none), the function name and its JSON
    arguments as text, the raw role generations (``{"planner": …, "caller": …}``), tokens used, the
    conversation ``turns`` this step adds before its observation, and the prompts it sent."""

    thought: str | None
    name: str
    arguments: str
    outputs: dict[str, str] = field(default_factory=dict)
    tokens: int = 0
    turns: list[Turn] = field(default_factory=list)
    prompts: list[PromptRecord] = field(default_factory=list)


@dataclass
class Step:
    """A finished step of the trajectory: the action and what the environment answered."""

    action: Action
    observation: str
    status: int


def conversation(task: Task, steps: Sequence[Step]) -> list[Turn]:
    """The α-UMi conversation so far: the user query, then each step's turns and its observation."""
    turns: list[Turn] = [{"from": "user", "value": task.query}]
    for step in steps:
        turns += step.action.turns
        turns.append({"from": "observation", "value": step.observation})
    return turns + list(task.turns_after)


def _complete(gen: Generator, prompt: str, grammar: str | None = None) -> Completion:
    """The generator's single completion for ``prompt``, whatever it returned (never raises on shape)."""
    out = gen.generate([prompt], grammars=[grammar]) if grammar is not None else gen.generate([prompt])
    first = out[0] if out else ""
    if isinstance(first, Completion):
        return first
    return Completion(first if isinstance(first, str) else "")


class _Recorder:
    """Collects what one ``act`` sent and spent."""

    def __init__(self, counts: ConstraintCounts | None = None) -> None:
        self.prompts: list[PromptRecord] = []
        self.tokens = 0
        self.counts = counts

    def ask(self, gen: Generator, role: str, prompt: str, grammar: str | None = None) -> str:
        c = _complete(gen, prompt, grammar)
        self.prompts.append(PromptRecord(role, prompt, c.prompt_tokens, c.dropped_tokens))
        self.tokens += (c.prompt_tokens or 0) + (c.completion_tokens or 0)
        if grammar is not None and self.counts is not None:
            self.counts.add(role, c.changed_by_grammar)
        return cut_eos(c.text).strip()


class ConstraintCounts:
    """Per role: outputs generated under a grammar, how many it changed, how many nobody could tell
    (a server does not report it). Thread-safe: ``--num_workers`` agents share one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.constrained: dict[str, int] = {}
        self.changed: dict[str, int] = {}
        self.unknown: dict[str, int] = {}

    def add(self, role: str, changed: bool | None) -> None:
        with self._lock:
            self.constrained[role] = self.constrained.get(role, 0) + 1
            counter = self.unknown if changed is None else self.changed
            counter[role] = counter.get(role, 0) + int(changed is None or changed)

    def lines(self) -> list[str]:
        out = []
        for role, n in sorted(self.constrained.items()):
            unknown = f" ({self.unknown[role]} not reported by the server)" if self.unknown.get(role) else ""
            out.append(f"{role}: the grammar changed {self.changed.get(role, 0)} of {n} outputs{unknown}")
        return out


# --- α-UMi ------------------------------------------------------------------------------------


class AlphaUmiAgent:
    """Planner → caller or summarizer per step (``collab_agent_v3``).

    The same :class:`Generator` may serve several roles (e.g. one backbone model for all three).
    ``prefix`` is put before every prompt: ``""`` (paper parity: the original agent omits the
    ``"system: "`` prefix used in training) or :data:`glpft.prompts.TRAIN_PREFIX`.
    """

    name = "collab_agent_v3"

    def __init__(
        self,
        planner: Generator,
        caller: Generator,
        summarizer: Generator,
        prefix: str = "",
        templates: Mapping[str, str] | None = None,
        constrained: str = "off",
    ):
        from glpft.constraints import CONSTRAINT_MODES

        if constrained not in CONSTRAINT_MODES:
            raise ValueError(f"constrained decoding must be one of {CONSTRAINT_MODES}, not {constrained!r}")
        self.planner, self.caller, self.summarizer = planner, caller, summarizer
        self.prefix = prefix
        self.templates = dict(templates or {})
        self.constrained = constrained
        self.constraint_counts = ConstraintCounts()

    def system_prompt(self, task: Task) -> str:
        """The system message of the answer file's train_messages: the tool docs the roles see."""
        return tool_doc(task.prompt_tools)

    def prompts(self, task: Task) -> RolePrompts:
        # paper parity: real time says "assistant: " for the thought and fills {thought} first
        return RolePrompts(task.prompt_tools, self.templates, prefix=self.prefix)

    def history(self, task: Task, steps: Sequence[Step]) -> str:
        """``user: q</s>`` then per step ``assistant: thought</s>caller: call</s>observation: obs``."""
        return history_text(conversation(task, steps))

    def _grammar(self, role: str, task: Task) -> str | None:
        if self.constrained == "off":
            return None
        from glpft.constraints import role_grammar

        return role_grammar(self.constrained, role, task.prompt_tools, required_inputs(task))

    def act(self, task: Task, steps: Sequence[Step], diversity: str | None = None) -> Action:
        """The next action. ``diversity`` (DFSDT's note about earlier siblings) is ignored on purpose.

        fixes: the original appended DFS diversity prompts to the planner's history as user turns the
        planner never saw in training; α-UMi's siblings differ by sampling instead.
        """
        history = self.history(task, steps)
        prompts = self.prompts(task)
        rec = _Recorder(self.constraint_counts)
        planner_prompt = prompts.build("planner", history).text
        grammar = self._grammar("planner", task)
        text = "none"
        for _ in range(PLANNER_RETRIES):
            text = clean_generation(rec.ask(self.planner, "planner", planner_prompt, grammar))
            if text != "none":
                break
        # paper parity: the real-time agent appends " Next: caller." with a space
        decision = parse_planner_output(text, no_marker_separator=" ")
        thought = decision.thought
        content = thought
        for marker in NEXT_MARKERS:
            content = content.replace(marker, "")
        content = content.strip()
        outputs = {"planner": thought}
        turns: list[Turn] = [{"from": "assistant", "value": thought}]
        if decision.next == "give up":
            return Action(
                content, FINISH_NAME, finish_arguments(None), outputs, rec.tokens, turns, rec.prompts
            )
        role, speaker = (
            ("summarizer", "conclusion") if decision.next == "conclusion" else ("caller", "caller")
        )
        model = self.summarizer if role == "summarizer" else self.caller
        output = rec.ask(model, role, prompts.build(role, history, thought).text, self._grammar(role, task))
        outputs[speaker] = output
        turns.append({"from": speaker, "value": output})
        # one reader for the joined step, as the original's collab_agent_parser (paper parity: a caller
        # output that says "Next: give up" / "Next: conclusion" ends the chain there too)
        step = parse_step(step_text(thought, speaker, output))
        if step.plan == "call":
            name, arguments = step.action or "none", step.action_input or "{}"
        else:
            name, arguments = FINISH_NAME, finish_arguments(step.answer if step.plan == "finish" else None)
        return Action(content, name, arguments, outputs, rec.tokens, turns, rec.prompts)


# --- single LLM ----------------------------------------------------------------------------------


class BackboneAgent:
    """One model writes ``thought\\nAction: …\\nAction Input: …`` or ``conclusion: …`` (GLPFT stage 1)."""

    name = "backbone"

    def __init__(self, model: Generator, prefix: str = "", template: str | None = None):
        self.model = model
        self.prefix = prefix
        self.template = template

    def system_prompt(self, task: Task) -> str:
        return tool_doc(task.prompt_tools)

    def history(self, task: Task, steps: Sequence[Step]) -> str:
        """``user: q</s>`` then per step ``assistant: thought\\nAction: …</s>observation: obs``."""
        return history_text(conversation(task, steps))

    def act(self, task: Task, steps: Sequence[Step], diversity: str | None = None) -> Action:
        """The next action; ``diversity`` is ignored (the model was not trained on such prompts)."""
        templates = {"backbone": self.template} if self.template else None
        prompt = RolePrompts(task.prompt_tools, templates, prefix=self.prefix).build(
            "backbone", self.history(task, steps)
        )
        rec = _Recorder()
        text = clean_generation(rec.ask(self.model, "backbone", prompt.text))
        thought, kind, payload = split_backbone_output(text)
        outputs = {"backbone": text}
        turns: list[Turn] = [{"from": "assistant", "value": text}]
        if kind == "give up":
            return Action(
                thought, FINISH_NAME, finish_arguments(None), outputs, rec.tokens, turns, rec.prompts
            )
        if kind == "conclusion":
            arguments = finish_arguments(payload or "")
            return Action(thought, FINISH_NAME, arguments, outputs, rec.tokens, turns, rec.prompts)
        name, arguments = parse_action(payload or "")
        return Action(thought, name, arguments, outputs, rec.tokens, turns, rec.prompts)


# --- OpenAI-compatible function calling --------------------------------------------------------

OPENAI_SYSTEM = (
    "You are a tool-using assistant. Solve the user's task step by step: at each step think about the "
    "state and call exactly one function. When you have the answer, call Finish with return_type "
    '"give_answer" and a complete final_answer; if the task cannot be solved from here, call Finish with '
    'return_type "give_up_and_restart". Only the final answer is shown to the user.'
)
OPENAI_DIVERSITY = (
    "This is not the first attempt at this step. Earlier attempts from this state were:\n{previous}\n"
    "Do something different from all of them."
)


def _schema_for_openai(schema: Mapping[str, Any]) -> dict[str, Any]:
    """ToolBench schemas carry a non-standard ``parameters.optional`` list; strict servers reject it."""
    out = json.loads(json.dumps(schema))
    params = out.get("parameters")
    if isinstance(params, dict):
        params.pop("optional", None)
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class OpenAIAgent:
    """Chat completions with ``tools`` at ``base_url`` (OpenAI, vLLM, …); the key is sent, never logged."""

    name = "openai_function"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        temperature: float = 0.0,
        timeout: float = 120.0,
        retries: int = 3,
        http_client: Any = None,
    ):
        self.client = ChatClient(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=retries,
            http_client=http_client,
            name="chat endpoint",
        )
        self.model = model
        self.temperature = temperature

    def __repr__(self) -> str:
        key = "set" if self.client.has_key else "unset"
        return f"OpenAIAgent(url={self.client.public_url!r}, model={self.model!r}, key={key})"

    def system_prompt(self, task: Task) -> str:
        return OPENAI_SYSTEM

    def messages(
        self, task: Task, steps: Sequence[Step], diversity: str | None = None
    ) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = [
            {"role": "system", "content": OPENAI_SYSTEM},
            {"role": "user", "content": task.query},
        ]
        for i, step in enumerate(steps):
            call_id = f"call_{i}"
            call = {"name": step.action.name, "arguments": step.action.arguments}
            msgs.append(
                {
                    "role": "assistant",
                    "content": step.action.thought,
                    "tool_calls": [{"id": call_id, "type": "function", "function": call}],
                }
            )
            msgs.append({"role": "tool", "tool_call_id": call_id, "content": step.observation})
        if diversity:
            # DFSDT's note lives only in this request; it is never stored in the trajectory
            msgs.append({"role": "user", "content": OPENAI_DIVERSITY.replace("{previous}", diversity)})
        return msgs

    def act(self, task: Task, steps: Sequence[Step], diversity: str | None = None) -> Action:
        tools = [{"type": "function", "function": _schema_for_openai(f)} for f in task.functions]
        # an unreachable endpoint (glpft.chat.EndpointUnavailable) propagates: it is the backend's failure,
        # not a decision of the model; a reply of the wrong shape is the model's and prunes the branch
        body = self.client.chat(
            self.messages(task, steps, diversity), self.model, tools=tools, temperature=self.temperature
        )
        message = message_of(body)
        if message is None:
            raise AgentError("chat endpoint answered without choices[0].message")
        usage = body.get("usage") if isinstance(body, dict) else None
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else 0
        raw = json.dumps(message, ensure_ascii=False)
        content = _text(message.get("content"))
        calls = message.get("tool_calls")
        first = calls[0] if isinstance(calls, list) and calls else None
        call = first.get("function") if isinstance(first, dict) else message.get("function_call")
        if not isinstance(call, dict):
            # a plain text answer: treated as the final answer (ToolBench would loop until depth runs out)
            return Action(content, FINISH_NAME, finish_arguments(content or ""), {"openai": raw}, tokens)
        arguments = call.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        name = _text(call.get("name")) or "none"
        return Action(content, name, arguments, {"openai": raw}, tokens)


__all__ = [
    "Action",
    "AgentError",
    "AlphaUmiAgent",
    "BackboneAgent",
    "Completion",
    "Generator",
    "OpenAIAgent",
    "PromptRecord",
    "Step",
    "Task",
    "conversation",
]

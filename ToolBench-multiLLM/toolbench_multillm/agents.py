"""Real-time agents: each turns a query, its tools and the trajectory so far into the next action.

- :class:`AlphaUmiAgent` — the paper's collaborative agent (``collab_agent_v3``): the planner writes a
  thought ending in a ``Next: …`` marker, then the caller writes the API call or the summarizer writes
  the final answer. Histories use ``assistant: `` turns, as the roles were trained (DESIGN §3.4, §3.6).
- :class:`BackboneAgent` — the single-LLM baseline: thought + action, or ``conclusion: …``.
- :class:`OpenAIAgent` — a function-calling chat model at any OpenAI-compatible base URL (baseline).

Agents only *decide*; the search (``search.py``) executes the action in the environment. A model
output never makes an agent raise: garbage becomes a call to a function named ``none`` (which the
environment answers with status 1, "no such function") or an empty answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from glpft.prompts import (
    EOS_TEXT,
    NEXT_CALLER,
    NEXT_MARKERS,
    ROLE_TEMPLATE,
    TRAIN_PREFIX,
    build_prompt,
    clean_generation,
    history_text,
    parse_action,
    parse_planner_output,
    render_turn,
    split_backbone_output,
    tool_doc,
)

log = logging.getLogger(__name__)

FINISH = "Finish"
GIVE_ANSWER = "give_answer"
GIVE_UP = "give_up_and_restart"
#: Planner retries on an empty generation (paper parity: the original tried up to 5 times).
PLANNER_RETRIES = 5


class Generator(Protocol):
    """Text in, text out: one completion per prompt (the role model's continuation, stop text removed).

    A generator may also define ``count_tokens(text) -> int``; agents then report token usage.
    """

    def generate(self, prompts: list[str]) -> list[str]: ...


class AgentError(RuntimeError):
    """The agent could not produce a step at all (e.g. the chat endpoint kept failing)."""


@dataclass
class Task:
    """What an agent sees of a query: its text, OpenAI schemas (Finish last) and α-UMi tool entries."""

    query: str
    functions: list[dict[str, Any]]
    prompt_tools: list[dict[str, Any]]


@dataclass
class Action:
    """One agent step: ``thought`` (None when the model wrote none), the function name and its JSON
    arguments as text, and the raw role generations (``{"planner": …, "caller": …}``)."""

    thought: str | None
    name: str
    arguments: str
    outputs: dict[str, str] = field(default_factory=dict)
    tokens: int = 0


@dataclass
class Turn:
    """A finished step of the trajectory: the action and what the environment answered."""

    action: Action
    observation: str
    status: int


def finish_arguments(answer: str | None) -> str:
    """Finish's arguments: give the answer, or give up and restart when ``answer`` is None."""
    if answer is None:
        return json.dumps({"return_type": GIVE_UP})
    return json.dumps({"return_type": GIVE_ANSWER, "final_answer": answer})


def _cut_eos(text: str) -> str:
    idx = text.find(EOS_TEXT)
    return text[:idx] if idx != -1 else text


def _tokens(gen: Any, *texts: str) -> int:
    count = getattr(gen, "count_tokens", None)
    return sum(count(t) for t in texts) if count is not None else 0


def _one(gen: Generator, prompt: str) -> str:
    out = gen.generate([prompt])
    return out[0] if out and isinstance(out[0], str) else ""


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
    ):
        self.planner, self.caller, self.summarizer = planner, caller, summarizer
        self.prefix = prefix
        self.templates = {**ROLE_TEMPLATE, **(templates or {})}

    def system_prompt(self, task: Task) -> str:
        """The system message of the answer file's train_messages: the tool docs the roles see."""
        return tool_doc(task.prompt_tools)

    def history(self, task: Task, turns: Sequence[Turn]) -> str:
        """``user: q</s>`` then per step ``assistant: thought</s>caller: call</s>observation: obs``."""
        conv = [{"from": "user", "value": task.query}]
        for t in turns:
            conv.append({"from": "assistant", "value": t.action.outputs.get("planner", "")})
            conv.append({"from": "caller", "value": t.action.outputs.get("caller", "")})
            conv.append({"from": "observation", "value": t.observation})
        return history_text(conv)

    def _prompt(self, role: str, task: Task, history: str, thought: str | None = None) -> str:
        return self.prefix + build_prompt(role, task.prompt_tools, history, thought, self.templates[role])

    def act(self, task: Task, turns: Sequence[Turn], diversity: str | None = None) -> Action:
        """The next action. ``diversity`` (DFSDT's note about earlier siblings) is ignored on purpose.

        fixes: the original appended DFS diversity prompts to the planner's history as user turns the
        planner never saw in training; α-UMi's siblings differ by sampling instead.
        """
        history = self.history(task, turns)
        prompt = self._prompt("planner", task, history)
        tokens = 0
        text = "none"
        for _ in range(PLANNER_RETRIES):
            raw = _one(self.planner, prompt)
            tokens += _tokens(self.planner, prompt, raw)
            text = clean_generation(_cut_eos(raw).strip())
            if text != "none":
                break
        decision = parse_planner_output(text)
        thought = decision.thought
        if not decision.had_marker:
            # paper parity: the real-time agent appends " Next: caller." with a space
            thought = text + " " + NEXT_CALLER
        content = thought
        for marker in NEXT_MARKERS:
            content = content.replace(marker, "")
        content = content.strip()
        outputs = {"planner": thought}
        if decision.next == "give up":
            return Action(content, FINISH, finish_arguments(None), outputs, tokens)
        dispatch = history + render_turn("assistant", thought)
        if decision.next == "conclusion":
            prompt = self._prompt("summarizer", task, dispatch, thought)
            raw = _one(self.summarizer, prompt)
            tokens += _tokens(self.summarizer, prompt, raw)
            answer = _cut_eos(raw).strip()
            outputs["conclusion"] = answer
            return Action(content, FINISH, finish_arguments(answer), outputs, tokens)
        prompt = self._prompt("caller", task, dispatch, thought)
        raw = _one(self.caller, prompt)
        tokens += _tokens(self.caller, prompt, raw)
        call = _cut_eos(raw).strip()
        outputs["caller"] = call
        name, arguments = parse_action(call)
        return Action(content, name, arguments, outputs, tokens)


# --- single LLM ----------------------------------------------------------------------------------


class BackboneAgent:
    """One model writes ``thought\\nAction: …\\nAction Input: …`` or ``conclusion: …`` (GLPFT stage 1)."""

    name = "backbone"

    def __init__(self, model: Generator, prefix: str = "", template: str | None = None):
        self.model = model
        self.prefix = prefix
        self.template = template or ROLE_TEMPLATE["backbone"]

    def system_prompt(self, task: Task) -> str:
        return tool_doc(task.prompt_tools)

    def history(self, task: Task, turns: Sequence[Turn]) -> str:
        conv = [{"from": "user", "value": task.query}]
        for t in turns:
            conv.append({"from": "assistant", "value": t.action.outputs.get("backbone", "")})
            conv.append({"from": "observation", "value": t.observation})
        return history_text(conv)

    def act(self, task: Task, turns: Sequence[Turn], diversity: str | None = None) -> Action:
        """The next action; ``diversity`` is ignored (the model was not trained on such prompts)."""
        prompt = self.prefix + build_prompt(
            "backbone", task.prompt_tools, self.history(task, turns), None, self.template
        )
        raw = _one(self.model, prompt)
        text = clean_generation(_cut_eos(raw).strip())
        tokens = _tokens(self.model, prompt, raw)
        thought, kind, payload = split_backbone_output(text)
        outputs = {"backbone": text}
        if kind == "give up":
            return Action(thought, FINISH, finish_arguments(None), outputs, tokens)
        if kind == "conclusion":
            return Action(thought, FINISH, finish_arguments(payload or ""), outputs, tokens)
        name, arguments = parse_action(payload or "")
        return Action(thought, name, arguments, outputs, tokens)


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
        import httpx

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._key = api_key or ""
        self.temperature = temperature
        self.retries = retries
        self._http = http_client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIAgent(url={self.url!r}, model={self.model!r}, key={'set' if self._key else 'unset'})"

    def system_prompt(self, task: Task) -> str:
        return OPENAI_SYSTEM

    def messages(
        self, task: Task, turns: Sequence[Turn], diversity: str | None = None
    ) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = [
            {"role": "system", "content": OPENAI_SYSTEM},
            {"role": "user", "content": task.query},
        ]
        for i, t in enumerate(turns):
            call_id = f"call_{i}"
            msgs.append(
                {
                    "role": "assistant",
                    "content": t.action.thought,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": t.action.name, "arguments": t.action.arguments},
                        }
                    ],
                }
            )
            msgs.append({"role": "tool", "tool_call_id": call_id, "content": t.observation})
        if diversity:
            # DFSDT's note lives only in this request; it is never stored in the trajectory
            msgs.append({"role": "user", "content": OPENAI_DIVERSITY.replace("{previous}", diversity)})
        return msgs

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        error = "no attempt"
        for _ in range(self.retries + 1):
            try:
                r = self._http.post(self.url, json=body, headers=headers)
            except httpx.HTTPError as e:
                error = type(e).__name__
                continue
            if r.status_code == 200:
                try:
                    return r.json()
                except ValueError:
                    error = "response is not JSON"
                    continue
            error = f"HTTP {r.status_code}"
            if r.status_code not in (429,) and r.status_code < 500:
                break
        raise AgentError(f"chat endpoint {self.url} failed: {error}")

    def act(self, task: Task, turns: Sequence[Turn], diversity: str | None = None) -> Action:
        body = {
            "model": self.model,
            "messages": self.messages(task, turns, diversity),
            "tools": [{"type": "function", "function": _schema_for_openai(f)} for f in task.functions],
            "temperature": self.temperature,
        }
        data = self._post(body)
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise AgentError("chat endpoint answered without choices[0].message") from None
        usage = data.get("usage") or {}
        tokens = int(usage.get("total_tokens") or 0)
        content = message.get("content")
        calls = message.get("tool_calls") or []
        call = calls[0].get("function", {}) if calls else message.get("function_call")
        if not call:
            # a plain text answer: treated as the final answer (ToolBench would loop until depth runs out)
            return Action(
                content, FINISH, finish_arguments(content or ""), {"openai": json.dumps(message)}, tokens
            )
        arguments = call.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return Action(
            content, str(call.get("name", "none")), arguments, {"openai": json.dumps(message)}, tokens
        )


# --- local models as generators -------------------------------------------------------------------


class ModelGenerator:
    """A local causal LM as a :class:`Generator`, on top of ``glpft.generation.generate``.

    Prompts longer than ``context_length - max_new_tokens - 8`` tokens keep their last tokens (paper
    parity) plus the BOS token when the tokenizer adds one. Each prompt's sampling seed is derived from
    its text and how often that text was seen, so DFSDT siblings differ and runs are reproducible.
    Calls are serialised (one model, many worker threads).
    """

    def __init__(
        self, model, tokenizer, config=None, context_length: int = 4096, batch_size: int = 8, seed: int = 0
    ):
        from glpft.generation import DecodingConfig
        from glpft.modeling import stop_token_ids

        self.model, self.tokenizer = model, tokenizer
        self.config = config or DecodingConfig()
        max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None) or context_length
        self.context_length = min(context_length, int(max_pos))
        self.batch_size = batch_size
        self.seed = seed
        self.stop_ids = stop_token_ids(tokenizer, model)
        self._seen: dict[int, int] = {}
        self._lock = threading.Lock()

    def encode(self, prompt: str) -> list[int]:
        ids = self.tokenizer(prompt).input_ids
        room = max(1, self.context_length - self.config.max_new_tokens - 8)
        if len(ids) > room:
            bos = self.tokenizer.bos_token_id
            head = [bos] if bos is not None and ids and ids[0] == bos else []
            ids = head + ids[len(ids) - (room - len(head)) :]
        return ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _seed(self, prompt: str) -> int:
        digest = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "little")
        n = self._seen.get(digest, 0)
        self._seen[digest] = n + 1
        return (self.seed * 1_000_003 + digest + n * 7919) % (2**31)

    def generate(self, prompts: list[str]) -> list[str]:
        from glpft.generation import generate

        with self._lock:
            ids = [self.encode(p) for p in prompts]
            seeds = [self._seed(p) for p in prompts]
            out = generate(
                self.model,
                ids,
                stop_ids=self.stop_ids,
                pad_id=self.tokenizer.pad_token_id,
                config=self.config,
                batch_size=self.batch_size,
                seeds=seeds,
            )
        texts = [self.tokenizer.decode(o, skip_special_tokens=True) for o in out]
        return [_cut_eos(t).strip() for t in texts]


__all__ = [
    "Action",
    "AgentError",
    "AlphaUmiAgent",
    "BackboneAgent",
    "Generator",
    "ModelGenerator",
    "OpenAIAgent",
    "TRAIN_PREFIX",
    "Task",
    "Turn",
    "finish_arguments",
]

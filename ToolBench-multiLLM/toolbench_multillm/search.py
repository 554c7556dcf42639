"""Search over agent steps (DESIGN §4.3): ``CoT@n`` and DFSDT (``DFS_woFilter_w2``), ToolBench's answer files.

A trajectory is a chain of tree nodes, three per agent step as in ToolBench: ``Thought`` (when the agent
wrote one), ``Action`` (function name) and ``Action Input`` (arguments; carries the observation and the
status code). The root is an empty ``Action Input``.

- ``CoT@n``: up to n independent chains; stop at the first final answer.
- ``DFS_woFilter_w<k>`` (DFSDT): depth-first, k children per node, stop at the first final answer or
  after ``max_queries`` agent steps. A give-up backtracks two levels, a chain that runs out of depth (or
  whose agent failed) one level, where a new sibling is generated.

paper parity: depth counts tree nodes, so ``max_depth=12`` allows about four agent steps; a "query" is
one agent step (α-UMi's planner + caller/summarizer calls count once), as ToolBench counts them.

``Search.to_json`` gives ToolBench's answer-file object: ``answer_generation`` (valid_data,
query_count, total_tokens, final_answer, finish_type, function, chain, train_messages, query) plus the
search tree; ``run_queries.answer_queries`` writes one per query.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from glpft.prompts import HALLUCINATED_CALL
from toolbench_multillm.agents import Action, AgentError, Step, Task
from toolbench_multillm.env import FINAL_ANSWER, GAVE_UP, NO_SUCH_FUNCTION

log = logging.getLogger(__name__)

THOUGHT, ACTION, ACTION_INPUT = "Thought", "Action", "Action Input"
# How many levels a DFSDT branch climbs back after a final answer / a give-up (ToolBench's values).
FINAL_ANSWER_BACK, GIVE_UP_BACK = 2, 2
_STOP = 10**6


class Environment(Protocol):
    """What the search needs of an environment (``env.ToolEnv`` is one)."""

    functions: list[dict[str, Any]]  # OpenAI schemas, Finish last
    prompt_tools: list[dict[str, Any]]  # α-UMi prompt entries

    def step(self, action: str, action_input: str) -> tuple[str, int]: ...


class Agent(Protocol):
    name: str

    def system_prompt(self, task: Task) -> str: ...

    def act(self, task: Task, steps: Sequence[Step], diversity: str | None = None) -> Action: ...


@dataclass(frozen=True)
class Limits:
    """ToolBench's search limits (the paper's run used these defaults)."""

    max_depth: int = 12
    max_queries: int = 200
    answers: int = 1


# --- tree -------------------------------------------------------------------------------------


class Node:
    """One tree node; ``action`` is set on the ``Action Input`` node that ends an agent step."""

    def __init__(self, node_type: str, description: str = "", parent: Node | None = None):
        self.node_type = node_type
        self.description = description
        self.parent = parent
        self.children: list[Node] = []
        self.depth = 0 if parent is None else parent.depth + 1
        self.observation = ""
        self.observation_code: int | None = None
        self.observation_source = ""
        self.pruned = False
        self.finished = False
        self.terminal = False
        self.expand_num = 0
        self.action: Action | None = None
        if parent is not None:
            parent.children.append(self)

    def path(self) -> list[Node]:
        """Nodes from the root (excluded) down to this one."""
        nodes, node = [], self
        while node.parent is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def steps(self) -> list[Step]:
        """The finished agent steps on the way to this node."""
        return [
            Step(n.action, n.observation, n.observation_code if n.observation_code is not None else 0)
            for n in self.path()
            if n.node_type == ACTION_INPUT and n.action is not None
        ]

    def make_finish(self, levels: int) -> None:
        """Mark this node and its ancestors finished up to ``levels`` more Action Input nodes (ToolBench)."""
        node: Node | None = self
        while node is not None:
            node.finished = True
            if node.node_type == ACTION_INPUT:
                levels -= 1
            if levels < 0:
                break
            node = node.parent

    def size(self) -> int:
        return 1 + sum(c.size() for c in self.children)

    def max_length(self) -> int:
        return 1 + max((c.max_length() for c in self.children), default=0)

    def to_json(self) -> dict[str, Any]:
        """ToolBench's node record (keys and types of the reference answer files)."""
        obj: dict[str, Any] = {
            # fixes: the original always wrote False here, even on the final-answer node
            "is_terminal": self.terminal,
            "pruned": self.pruned,
            "finished": self.finished,
            "depth": self.depth,
            "node_type": self.node_type,
            "description": self.description,
            "Elo": 1000.0,
        }
        if self.observation != "":
            obj["observation"] = self.observation
        if self.observation_code is not None:
            obj["observation_code"] = self.observation_code
        if self.observation_source:
            obj["observation_source"] = self.observation_source
        obj["child_count"] = len(self.children)
        obj["expand_num"] = self.expand_num
        if self.node_type == ACTION_INPUT:
            obj["io_state"] = {}
        if self.action is not None and self.action.outputs:
            obj["generations"] = dict(self.action.outputs)
        return obj

    def to_json_recursive(self) -> dict[str, Any]:
        obj = self.to_json()
        obj["children"] = [c.to_json_recursive() for c in self.children]
        return obj

    def tree_json(self) -> dict[str, Any]:
        return {"size": self.size(), "max_length": self.max_length(), "tree": self.to_json_recursive()}


# --- search -----------------------------------------------------------------------------------


def parse_method(method: str) -> tuple[str, int]:
    """``("cot", n)`` for ``CoT@n``, ``("dfs", width)`` for ``DFS_woFilter_w<width>``."""
    m = re.fullmatch(r"CoT@(\d+)", method)
    if m and int(m.group(1)) >= 1:
        return "cot", int(m.group(1))
    m = re.fullmatch(r"DFS_woFilter_w(\d+)", method)
    if m and int(m.group(1)) >= 1:
        return "dfs", int(m.group(1))
    if re.fullmatch(r"DFS_w\d+", method):
        raise ValueError(
            f"{method}: DFS with an LLM ranking filter is not implemented; use DFS_woFilter_w2 (DFSDT)"
        )
    raise ValueError(f"unknown method {method!r}: expected CoT@<n> or DFS_woFilter_w<width>")


class Search:
    """One query's search state: the agent, the environment, counters and what was found."""

    def __init__(self, agent: Agent, task: Task, env: Environment, limits: Limits = Limits()):
        self.agent, self.task, self.env, self.limits = agent, task, env, limits
        self.query_count = 0
        self.total_tokens = 0
        self.expansions = 0
        self.terminal: list[Node] = []
        self.give_up: list[Node] = []
        self.roots: list[Node] = []
        self.tries: list[Node] = []
        self.forward_args: dict[str, Any] = {}
        #: every model input sent, in order: {"step", "depth", "role", "text", "tokens", "dropped_tokens"}
        self.prompt_log: list[dict[str, Any]] = []
        #: how many observations came from each source (cache, upstream, simulator, …)
        self.sources: dict[str, int] = {}

    def run(self, method: str) -> None:
        """``CoT@n`` or ``DFS_woFilter_w<k>``; a backend failure propagates (the state so far stays)."""
        kind, n = parse_method(method)
        self.cot(n) if kind == "cot" else self.dfs(n)

    # one agent step ------------------------------------------------------------------------
    def expand(self, node: Node, diversity: str | None = None) -> Node:
        """Ask the agent for the next step from ``node``, execute it, return the new leaf."""
        self.query_count += 1
        try:
            action = self.agent.act(self.task, node.steps(), diversity)
        except AgentError as e:
            log.warning("agent failed: %s", e)
            leaf = Node(THOUGHT, f"agent error: {e}", node)
            leaf.pruned = True
            return leaf
        self.total_tokens += action.tokens
        for p in action.prompts:
            self.prompt_log.append(
                {
                    "step": self.query_count,
                    "depth": node.depth,
                    "role": p.role,
                    "text": p.text,
                    "tokens": p.tokens,
                    "dropped_tokens": p.dropped_tokens,
                }
            )
        current = node
        if action.thought is not None:
            current = Node(THOUGHT, action.thought, current)
        current = Node(ACTION, action.name, current)
        leaf = Node(ACTION_INPUT, action.arguments, current)
        leaf.action = action
        # a failing tool backend (env.ToolBackendError) ends the search here: nothing after it is a result
        leaf.observation, leaf.observation_code = self.env.step(action.name, action.arguments)
        leaf.observation_source = getattr(self.env, "last_source", "")
        if leaf.observation_source:
            self.sources[leaf.observation_source] = self.sources.get(leaf.observation_source, 0) + 1
        if leaf.observation_code == GAVE_UP:
            leaf.pruned = True
        elif leaf.observation_code == FINAL_ANSWER:
            leaf.terminal = True
            leaf.make_finish(FINAL_ANSWER_BACK)
        return leaf

    # CoT@n ------------------------------------------------------------------------------------
    def cot(self, n: int = 1) -> None:
        self.forward_args = {
            "single_chain_max_step": self.limits.max_depth,
            "pass_at": n,
            "answer": self.limits.answers,
        }
        for _ in range(n):
            node = Node(ACTION_INPUT)
            self.roots.append(node)
            while True:
                node = self.expand(node)
                if node.depth >= self.limits.max_depth and not node.terminal:
                    node.pruned = True
                if node.pruned or node.terminal:
                    break
            self.tries.append(node)
            if node.terminal:
                self.terminal.append(node)
                if len(self.terminal) >= self.limits.answers:
                    return
            elif node.observation_code == GAVE_UP:
                self.give_up.append(node)

    # DFSDT ------------------------------------------------------------------------------------
    def dfs(self, width: int = 2) -> None:
        self.forward_args = {
            "single_chain_max_step": self.limits.max_depth,
            "tree_beam_size": width,
            "max_query_count": self.limits.max_queries,
            "answer": self.limits.answers,
            "with_filter": False,
        }
        root = Node(ACTION_INPUT)
        self.roots.append(root)
        self._dfs(root, width)

    def _dfs(self, node: Node, width: int) -> int:
        """Returns how many levels to climb back (ToolBench's convention; huge = stop)."""
        node.expand_num = self.expansions
        self.expansions += 1
        if node.terminal:
            self.terminal.append(node)
            return FINAL_ANSWER_BACK
        if node.depth >= self.limits.max_depth or node.pruned:
            node.pruned = True
            if node.observation_code == GAVE_UP:
                self.give_up.append(node)
                return GIVE_UP_BACK
            return 1
        for _ in range(width):
            diversity = self.diversity_note(node) if node.children else None
            leaf = self.expand(node, diversity)
            if self.query_count >= self.limits.max_queries:
                # fixes: the original stopped before looking at the last step, losing its final answer
                if leaf.terminal:
                    self.terminal.append(leaf)
                return _STOP
            back = self._dfs(leaf, width)
            if len(self.terminal) >= self.limits.answers:
                return _STOP
            if back > 1:
                return back - 1
        return 1

    @staticmethod
    def diversity_note(node: Node) -> str | None:
        """JSON list of the calls already tried from ``node`` (only the OpenAI agent shows it to its model)."""
        tried = []
        for child in node.children:
            n = child
            while n.node_type != ACTION_INPUT and n.children:
                n = n.children[0]
            if n.node_type == ACTION_INPUT and n.parent is not None:
                tried.append(
                    {
                        "name": n.parent.description,
                        "arguments": n.description,
                        "function_output": n.observation,
                    }
                )
        if not tried:
            return None
        note = json.dumps(tried, indent=2)
        if node.observation:
            note += f"\nThe last observation before these attempts was: {node.observation}"
        return note

    # answer file ------------------------------------------------------------------------------
    def messages(self, leaf: Node) -> list[dict[str, Any]]:
        """The OpenAI-style chat of the chain ending at ``leaf`` (system, user, assistant/function …)."""
        msgs: list[dict[str, Any]] = [
            {"role": "system", "content": self.agent.system_prompt(self.task)},
            {"role": "user", "content": self.task.query},
        ]
        for step in leaf.steps():
            name = HALLUCINATED_CALL if step.status == NO_SUCH_FUNCTION else step.action.name
            msgs.append(
                {
                    "role": "assistant",
                    "content": step.action.thought,
                    "function_call": {"name": name, "arguments": step.action.arguments},
                }
            )
            msgs.append({"role": "function", "name": name, "content": step.observation})
        return msgs

    def train_messages(self, leaf: Node) -> list[list[dict[str, Any]]]:
        """One growing message list per assistant step; the last one is the whole chain (ToolBench)."""
        msgs = self.messages(leaf)
        return [msgs[: i + 1] for i, m in enumerate(msgs) if m["role"] == "assistant"]

    @staticmethod
    def chain_json(leaf: Node) -> list[dict[str, Any]]:
        return [n.to_json() for n in leaf.path()]

    def to_json(self, query: str) -> dict[str, Any]:
        gen: dict[str, Any] = {
            "valid_data": False,
            "query_count": self.query_count,
            "total_tokens": self.total_tokens,
            "final_answer": "",
            "finish_type": "give_answer",
            "function": self.env.functions,
            "chain": [],
            "train_messages": [],
            "query": query,
            "observation_sources": dict(sorted(self.sources.items())),
        }
        chosen = next((n for n in self.terminal if not n.pruned), None)
        if chosen is not None:
            gen.update(
                valid_data=True, final_answer=chosen.description, train_messages=self.train_messages(chosen)
            )
        elif self.give_up:
            # paper parity: a give-up chain is kept as valid data (the original picked one at random;
            # we take the first so reruns agree)
            chosen = self.give_up[0]
            gen.update(
                valid_data=True,
                finish_type="give_up",
                final_answer=chosen.description,
                train_messages=self.train_messages(chosen),
            )
        out: dict[str, Any] = {
            "win": bool(self.terminal),
            "forward_args": self.forward_args,
            "compare_candidates": [self.chain_json(n) for n in self.terminal if not n.pruned],
        }
        if self.tries:
            out["try_count"] = len(self.tries)
            out["trys"] = [{"chain": self.chain_json(n), "win": n.terminal} for n in self.tries]
        out["tree"] = self.roots[-1].tree_json() if self.roots else None
        out["answer_generation"] = gen
        return out


def solve(
    agent: Agent, env: Environment, query: str, method: str, limits: Limits = Limits()
) -> dict[str, Any]:
    """Run ``method`` for one query and return the answer-file object."""
    return search(agent, env, query, method, limits).to_json(query)


def search(agent: Agent, env: Environment, query: str, method: str, limits: Limits = Limits()) -> Search:
    """Run ``method`` for one query; the finished :class:`Search` (answer, tree, prompt log)."""
    s = Search(agent, Task(query, list(env.functions), list(env.prompt_tools)), env, limits)
    s.run(method)
    return s

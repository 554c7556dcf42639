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

Output per query: ``<out_dir>/<query_id>_<method>.json`` with ``answer_generation`` (ToolBench's answer
format: valid_data, query_count, total_tokens, final_answer, finish_type, function, chain,
train_messages, query) plus the search tree, written atomically; a rerun skips ids already answered.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from glpft.prompts import HALLUCINATED_CALL
from toolbench_multillm.agents import Action, AgentError, Task, Turn
from toolbench_multillm.convert import write_json_atomic

log = logging.getLogger(__name__)

THOUGHT, ACTION, ACTION_INPUT = "Thought", "Action", "Action Input"
# Status codes the search reacts to (DESIGN §4.2).
NO_SUCH_FUNCTION, FINAL_ANSWER, GIVE_UP = 1, 3, 4
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

    def act(self, task: Task, turns: Sequence[Turn], diversity: str | None = None) -> Action: ...


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

    def turns(self) -> list[Turn]:
        """The finished agent steps on the way to this node."""
        return [
            Turn(n.action, n.observation, n.observation_code if n.observation_code is not None else 0)
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

    # one agent step ------------------------------------------------------------------------
    def expand(self, node: Node, diversity: str | None = None) -> Node:
        """Ask the agent for the next step from ``node``, execute it, return the new leaf."""
        self.query_count += 1
        try:
            action = self.agent.act(self.task, node.turns(), diversity)
        except AgentError as e:
            log.warning("agent failed: %s", e)
            leaf = Node(THOUGHT, f"agent error: {e}", node)
            leaf.pruned = True
            return leaf
        self.total_tokens += action.tokens
        current = node
        if action.thought is not None:
            current = Node(THOUGHT, action.thought, current)
        current = Node(ACTION, action.name, current)
        leaf = Node(ACTION_INPUT, action.arguments, current)
        leaf.action = action
        leaf.observation, leaf.observation_code = self.env.step(action.name, action.arguments)
        if leaf.observation_code == GIVE_UP:
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
            elif node.observation_code == GIVE_UP:
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
            if node.observation_code == GIVE_UP:
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
        for turn in leaf.turns():
            name = HALLUCINATED_CALL if turn.status == NO_SUCH_FUNCTION else turn.action.name
            msgs.append(
                {
                    "role": "assistant",
                    "content": turn.action.thought,
                    "function_call": {"name": name, "arguments": turn.action.arguments},
                }
            )
            msgs.append({"role": "function", "name": name, "content": turn.observation})
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
    kind, n = parse_method(method)
    task = Task(query=query, functions=list(env.functions), prompt_tools=list(env.prompt_tools))
    search = Search(agent, task, env, limits)
    if kind == "cot":
        search.cot(n)
    else:
        search.dfs(n)
    return search.to_json(query)


# --- many queries ---------------------------------------------------------------------------------


def answer_path(out_dir: str | os.PathLike, query_id: Any, method: str) -> Path:
    return Path(out_dir) / f"{query_id}_{method}.json"


@dataclass
class RunSummary:
    total: int = 0
    skipped_done: int = 0
    skipped_no_tools: int = 0
    failed: int = 0
    answered: int = 0
    gave_up: int = 0
    no_answer: int = 0

    def table(self) -> str:
        rows = [(k.replace("_", " "), v) for k, v in self.__dict__.items()]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v:>6}" for k, v in rows)


def _qid_and_text(query: Any) -> tuple[str, str]:
    if isinstance(query, dict):
        return str(query["query_id"]), query["query"]
    return str(query.query_id), query.query


def run_queries(
    queries: Sequence[Any],
    make_env: Callable[[Any], Environment],
    agent: Agent,
    method: str,
    out_dir: str | os.PathLike,
    num_workers: int = 1,
    limits: Limits = Limits(),
    progress: bool = True,
    skip_errors: tuple[type[BaseException], ...] = (LookupError,),
) -> RunSummary:
    """Answer every query whose answer file does not exist yet; ``num_workers`` queries at a time.

    ``make_env(query)`` builds the query's environment; one raising ``skip_errors`` (e.g. a tool missing
    from ``tool_root_dir``) skips the query, as ToolBench does. A query whose search fails is logged and
    left without a file, so the next run retries it.
    """
    parse_method(method)  # fail fast on a bad method
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(total=len(queries))
    todo = []
    for q in queries:
        qid, _ = _qid_and_text(q)
        if answer_path(out_dir, qid, method).exists():
            summary.skipped_done += 1
        else:
            todo.append(q)
    log.info("%d queries, %d already answered, %d to do", len(queries), summary.skipped_done, len(todo))

    def one(q: Any) -> str:
        qid, text = _qid_and_text(q)
        try:
            env = make_env(q)
        except skip_errors as e:
            log.warning("query %s skipped: %s", qid, e)
            return "skipped_no_tools"
        data = solve(agent, env, text, method, limits)
        write_json_atomic(answer_path(out_dir, qid, method), data, indent=2)
        gen = data["answer_generation"]
        if not gen["valid_data"]:
            return "no_answer"
        return "answered" if gen["finish_type"] == "give_answer" else "gave_up"

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"{method}", unit="query")
    pool = ThreadPoolExecutor(max_workers=max(1, num_workers))
    try:
        futures = {pool.submit(one, q): q for q in todo}
        for fut in as_completed(futures):
            try:
                outcome = fut.result()
            except Exception:
                log.exception("query %s failed", _qid_and_text(futures[fut])[0])
                outcome = "failed"
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if bar is not None:
                bar.set_postfix(answered=summary.answered, failed=summary.failed, refresh=False)
                bar.update(1)
    finally:
        # on Ctrl-C: queries not started yet are dropped; running ones finish and write their files
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return summary

"""ToolBench answer files → ToolEval's converted format (DESIGN §4.4), and readers of that format.

    alpha-umi tooleval convert --answer_dir output_res/alpha-umi/G1_instruction \
        --method DFS_woFilter_w2 --output output_res/converted/alpha-umi/G1_instruction.json

Converted file: ``{query_id: {query, available_tools, answer: {method, total_steps, final_answer,
answer_details}}}`` where ``answer_details`` is one nested chain ``[{"role", "message", "next": [child]}]``.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, TypedDict

from glpft.parsing import ABSENT, FINISH_NAME, parse_finish

log = logging.getLogger(__name__)


class DetailNode(TypedDict):
    role: str  # "system" | "user" | "tool" | "assistant"
    message: Any  # str; tool nodes: {name, arguments, response} (older files: that dict's repr, truncated)
    next: list[DetailNode]


class ConvertedBody(TypedDict):
    method: str
    total_steps: int
    final_answer: str
    answer_details: list[DetailNode]


class ConvertedAnswer(TypedDict):
    query: str
    available_tools: list[dict]
    answer: ConvertedBody


Step = tuple[str, Any]  # (role, message) before nesting


# ----------------------------------------------------------------------------- conversion


def _tool_step(name: str, arguments: Any, response: Any) -> Step:
    if not isinstance(arguments, str):  # fixes: dict-typed arguments
        arguments = json.dumps(arguments, ensure_ascii=False)
    response = "" if response is None else response
    if not isinstance(response, str):
        response = json.dumps(response, ensure_ascii=False)
    return ("tool", {"name": name, "arguments": arguments, "response": response})


def steps_from_messages(messages: list[dict]) -> list[Step]:
    """Steps of one train_messages chain: every assistant message after system+user becomes a node.

    A function call becomes a ``tool`` node whose response is the following function message's content
    (``""`` for Finish); an assistant message without a call becomes an ``assistant`` node.
    """
    steps: list[Step] = []
    for i in range(2, len(messages)):
        msg = messages[i]
        if msg.get("role") != "assistant":
            continue  # function results are read with their call; mid-chain user turns are DFS prompts
        call = msg.get("function_call")
        if not call:
            steps.append(("assistant", msg.get("content") or ""))
            continue
        name = call.get("name", "")
        response: Any = ""
        if (
            name != FINISH_NAME
            and i + 1 < len(messages)
            and messages[i + 1].get("role") in ("function", "tool")
        ):
            response = messages[i + 1].get("content", "")
        steps.append(_tool_step(name, call.get("arguments", ""), response))
    return steps


def steps_from_search_nodes(nodes: list[dict]) -> list[Step]:
    """Steps from search-tree nodes in order: ``Action`` + the ``Action Input`` right after → tool node."""
    steps: list[Step] = []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        kind = node.get("node_type")
        if kind == "Thought":
            steps.append(("assistant", node.get("description", "")))
        elif kind == "Action":
            name = node.get("description", "")
            nxt = nodes[i + 1] if i + 1 < len(nodes) else None
            if nxt is not None and nxt.get("node_type") == "Action Input":
                response = "" if name == FINISH_NAME else nxt.get("observation", "")
                steps.append(_tool_step(name, nxt.get("description", ""), response))
                i += 1
            else:  # an action the search never executed
                steps.append(_tool_step(name, "", ""))
        # a lone "Action Input" (the tree root) carries nothing to show
        i += 1
    return steps


def flatten_tree(root: dict) -> list[dict]:
    """Depth-first pre-order of a search tree: every branch the search tried, in the order tried."""
    out: list[dict] = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.get("children") or []))
    return out


def _nest(steps: list[Step]) -> list[DetailNode]:
    head: list[DetailNode] = []
    tail = head
    for role, message in steps:
        node: DetailNode = {"role": role, "message": message, "next": []}
        tail.append(node)
        tail = node["next"]
    return head


def convert_answer(data: dict, method: str) -> ConvertedAnswer:
    """One ToolBench answer file (``{"answer_generation": …, "tree"|"trys": …}``) → one converted entry.

    Valid answers use the last train_messages chain. Answers without valid data are converted from the
    search tree (DFSDT: the whole tree, depth-first) or from the last try (CoT/ReAct).
    """
    gen = data["answer_generation"]
    chains = gen.get("train_messages") or []
    if gen.get("valid_data") and chains:
        steps = steps_from_messages(chains[-1])
    elif isinstance(data.get("tree"), dict) and isinstance(data["tree"].get("tree"), dict):
        steps = steps_from_search_nodes(flatten_tree(data["tree"]["tree"]))
    elif data.get("trys"):
        # paper parity: ToolEval picks a random try; we take the last one so conversion is deterministic
        steps = steps_from_search_nodes(data["trys"][-1].get("chain") or [])
    else:
        steps = []
    # paper parity (StableToolBench files): the system and user nodes carry empty messages
    details = _nest([("system", ""), ("user", "")] + steps)
    return {
        "query": gen["query"],
        "available_tools": gen["function"],
        "answer": {
            "method": method,
            "total_steps": len(steps) + 2,
            "final_answer": gen.get("final_answer", ""),
            "answer_details": details,
        },
    }


def _id_key(qid: str) -> tuple[int, str]:
    return (int(qid), qid) if qid.isdigit() else (1 << 62, qid)


def convert_answer_dir(answer_dir: str | os.PathLike, method: str) -> dict[str, ConvertedAnswer]:
    """Every ``<query_id>_…<method>….json`` in ``answer_dir`` → ``{query_id: converted}``, ids sorted."""
    answer_dir = Path(answer_dir)
    if not answer_dir.is_dir():
        raise FileNotFoundError(f"{answer_dir}: answer folder not found")
    out: dict[str, ConvertedAnswer] = {}
    for path in sorted(answer_dir.glob("*.json")):
        if method not in path.name:
            continue
        qid = path.name.split("_")[0]
        if qid in out:
            log.warning("%s: a second answer for query %s replaces the first", path, qid)
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if "answer_generation" not in data:
            raise ValueError(f"{path}: missing field 'answer_generation'")
        try:
            out[qid] = convert_answer(data, method)
        except KeyError as e:
            raise ValueError(f"{path}: missing field 'answer_generation.{e.args[0]}'") from None
    return dict(sorted(out.items(), key=lambda kv: _id_key(kv[0])))


# ----------------------------------------------------------------------------- reading


def read_converted(path: str | os.PathLike) -> dict[str, ConvertedAnswer]:
    """Read and validate a converted file; errors name the file, the query id and the field."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{query_id: answer}}")
    for qid, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("query"), str):
            raise ValueError(f"{path}: query {qid}: missing field 'query'")
        answer = entry.get("answer")
        if not isinstance(answer, dict) or not isinstance(answer.get("answer_details"), list):
            raise ValueError(f"{path}: query {qid}: missing field 'answer.answer_details'")
        entry.setdefault("available_tools", [])
        answer.setdefault("final_answer", "")
    return data


def answer_chain(answer: ConvertedBody) -> list[DetailNode]:
    """The nodes of ``answer_details`` in order (first child at every level)."""
    nodes: list[DetailNode] = []
    level = answer.get("answer_details") or []
    while level:
        nodes.append(level[0])
        level = level[0].get("next") or []
    return nodes


_NAME_IN_REPR = re.compile(r"""^\{\s*['"]name['"]\s*:\s*['"]([^'"]*)['"]""")


def tool_call(node: DetailNode) -> dict | None:
    """A tool node's ``{name, arguments, response}``; repr strings (possibly truncated) are parsed best-effort."""
    if node.get("role") != "tool":
        return None
    msg = node.get("message")
    if isinstance(msg, dict):
        return msg
    if isinstance(msg, str):
        try:
            value = ast.literal_eval(msg)
            if isinstance(value, dict):
                return value
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
        m = _NAME_IN_REPR.match(msg)
        return {"name": m.group(1) if m else "", "arguments": "", "response": msg}
    return {"name": "", "arguments": "", "response": str(msg)}


def has_finish(answer: ConvertedBody) -> bool:
    """True when the last step calls Finish (ToolEval's test: ``'name': 'Finish'`` in the final step)."""
    nodes = answer_chain(answer)
    if not nodes:
        return False
    call = tool_call(nodes[-1])
    return bool(call) and call.get("name") == FINISH_NAME


def final_answer_text(answer: ConvertedBody) -> str:
    """The user-facing final answer: ``final_answer`` (JSON ``{"final_answer": …}`` unwrapped), else Finish's."""
    candidates = [answer.get("final_answer") or ""]
    nodes = answer_chain(answer)
    call = tool_call(nodes[-1]) if nodes else None
    if call and call.get("name") == FINISH_NAME:
        candidates.append(call.get("arguments") or "")
    for raw in candidates:
        if not isinstance(raw, str):
            raw = json.dumps(raw, ensure_ascii=False)
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return raw
        if isinstance(value, dict):
            finish = parse_finish(value)
            if finish.final_answer is not ABSENT and finish.final_answer:
                return str(finish.final_answer)
            if finish.gives_up:
                return "(gave up)"
            continue
        return raw
    return ""

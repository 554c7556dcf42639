"""ToolBench answer files → ToolEval's converted format (DESIGN §4.4), and readers of that format.

    alpha-umi tooleval convert --answer_dir output_res/alpha-umi/G1_instruction \
        --method DFS_woFilter_w2 --output output_res/converted/alpha-umi/G1_instruction.json

Converted file: ``{query_id: {query, available_tools, answer: {method, total_steps, final_answer,
answer_details}}}`` where ``answer_details`` is one nested chain ``[{"role", "message", "next": [child]}]``.
Answer files that run-queries marks with ``answer_generation.infrastructure_error`` (made while the tool
backend failed) are skipped and counted, never converted; bad files raise a one-line FormatError naming
the file and the field. Where an answer file records provenance (``observation_source`` per node), the
entry carries ``simulated_observations``: how many observations of the judged chain (of any node, for
answers without valid data) a simulator invented — pass rates are split by it.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from glpft.formats import FormatError, read_json
from glpft.parsing import ABSENT, FINISH_NAME, parse_finish
from toolbench_multillm.sources import simulated_observations

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


class _ConvertedAnswer(TypedDict):
    query: str
    available_tools: list[dict]
    answer: ConvertedBody


class ConvertedAnswer(_ConvertedAnswer, total=False):
    simulated_observations: int  # of the judged chain; absent where the answer file records no provenance


Step = tuple[str, Any]  # (role, message) before nesting


# ----------------------------------------------------------------------------- conversion


def _tool_step(name: str, arguments: Any, response: Any) -> Step:
    if not isinstance(arguments, str):  # fixes: dict-typed arguments
        arguments = json.dumps(arguments, ensure_ascii=False)
    response = "" if response is None else response
    if not isinstance(response, str):
        response = json.dumps(response, ensure_ascii=False)
    return ("tool", {"name": name, "arguments": arguments, "response": response})


def _bad(where_: str, field_: str, problem: str) -> FormatError:
    return FormatError(f"{where_}: field '{field_}' {problem}", f"bad '{field_}'")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def steps_from_messages(messages: list[dict], where_: str = "answer", field_: str = "messages") -> list[Step]:
    """Steps of one train_messages chain: every assistant message after system+user becomes a node.

    A function call becomes a ``tool`` node whose response is the following function message's content
    (``""`` for Finish); an assistant message without a call becomes an ``assistant`` node. A message
    that is not an object raises a FormatError naming ``where_`` and ``field_[i]``.
    """
    if not isinstance(messages, list):
        raise _bad(where_, field_, f"should be a list of messages, got {_kind(messages)}")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(where_, f"{field_}[{i}]", f"should be a message object, got {_kind(msg)}")
    steps: list[Step] = []
    for i in range(2, len(messages)):
        msg = messages[i]
        if msg.get("role") != "assistant":
            continue  # function results are read with their call; mid-chain user turns are DFS prompts
        call = msg.get("function_call")
        if not call:
            steps.append(("assistant", msg.get("content") or ""))
            continue
        if not isinstance(call, dict):
            raise _bad(where_, f"{field_}[{i}].function_call", f"should be an object, got {_kind(call)}")
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


def flatten_tree(root: dict, where_: str = "answer", field_: str = "tree.tree") -> list[dict]:
    """Depth-first pre-order of a search tree: every branch the search tried, in the order tried.

    A node that is not an object, or whose ``children`` is not a list, raises a FormatError.
    """
    out: list[dict] = []
    stack = [(root, field_)]
    while stack:
        node, at = stack.pop()
        if not isinstance(node, dict):
            raise _bad(where_, at, f"should be a search-tree node object, got {_kind(node)}")
        out.append(node)
        children = node.get("children") or []
        if not isinstance(children, list):
            raise _bad(where_, f"{at}.children", f"should be a list, got {_kind(children)}")
        stack.extend((c, f"{at}.children[{j}]") for j, c in reversed(list(enumerate(children))))
    return out


def _chain_nodes(chain: Any, where_: str, field_: str) -> list[dict]:
    if not isinstance(chain, list):
        raise _bad(where_, field_, f"should be a list of nodes, got {_kind(chain)}")
    for i, node in enumerate(chain):
        if not isinstance(node, dict):
            raise _bad(where_, f"{field_}[{i}]", f"should be a node object, got {_kind(node)}")
    return chain


def _nest(steps: list[Step]) -> list[DetailNode]:
    head: list[DetailNode] = []
    tail = head
    for role, message in steps:
        node: DetailNode = {"role": role, "message": message, "next": []}
        tail.append(node)
        tail = node["next"]
    return head


#: most nodes one converted chain may have: it nests two JSON levels per node, and JSON readers stop near
#: 1000 levels (a longer chain could be written by no one and read by no one)
MAX_DETAIL_NODES = 400


def _bounded(steps: list[Step]) -> list[Step]:
    """``steps`` cut to fit MAX_DETAIL_NODES with system and user: the last steps (those that end the
    answer, Finish included) are kept, behind one assistant node saying how many were left out."""
    room = MAX_DETAIL_NODES - 2
    if len(steps) <= room:
        return steps
    kept = steps[-(room - 1) :]
    note = f"({len(steps) - len(kept)} earlier steps left out: the converted chain holds {MAX_DETAIL_NODES} nodes)"
    return [("assistant", note)] + kept


def answer_steps(data: Any, where_: str = "answer") -> tuple[dict, list[Step]]:
    """``(answer_generation, steps)`` of one ToolBench answer file (``{"answer_generation": …, "tree"|"trys"}``).

    Valid answers use the last train_messages chain. Answers without valid data are converted from the
    search tree (DFSDT: the whole tree, depth-first) or from the last try (CoT/ReAct). A file without
    the expected shape raises a one-line FormatError naming ``where_`` (the file) and the field.
    """
    if not isinstance(data, dict):
        raise FormatError(f"{where_}: expected a JSON object, got {_kind(data)}", "wrong top-level type")
    gen = data.get("answer_generation")
    if not isinstance(gen, dict):
        if gen is None:
            raise FormatError(f"{where_}: missing field 'answer_generation'", "missing 'answer_generation'")
        raise _bad(where_, "answer_generation", f"should be an object, got {_kind(gen)}")
    for name, kind in (("query", str), ("function", list)):
        if name not in gen:
            raise FormatError(f"{where_}: missing field 'answer_generation.{name}'", f"missing '{name}'")
        if not isinstance(gen[name], kind):
            raise _bad(
                where_, f"answer_generation.{name}", f"should be {_kind(kind())}, got {_kind(gen[name])}"
            )
    chains = gen.get("train_messages") or []
    if not isinstance(chains, list):
        raise _bad(where_, "answer_generation.train_messages", f"should be a list, got {_kind(chains)}")
    tree, trys = data.get("tree"), data.get("trys")
    if gen.get("valid_data") and chains:
        steps = steps_from_messages(chains[-1], where_, "answer_generation.train_messages[-1]")
    elif isinstance(tree, dict) and isinstance(tree.get("tree"), dict):
        steps = steps_from_search_nodes(flatten_tree(tree["tree"], where_, "tree.tree"))
    elif trys:
        if not isinstance(trys, list) or not isinstance(trys[-1], dict):
            raise _bad(where_, "trys", "should be a list of try objects")
        # paper parity: ToolEval picks a random try; we take the last one so conversion is deterministic
        steps = steps_from_search_nodes(_chain_nodes(trys[-1].get("chain") or [], where_, "trys[-1].chain"))
    else:
        steps = []
    return gen, steps


def _entry(gen: dict, steps: list[Step], method: str) -> ConvertedAnswer:
    steps = _bounded(steps)
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


def convert_answer(data: dict, method: str, where_: str = "answer") -> ConvertedAnswer:
    """One ToolBench answer file → one converted entry (see :func:`answer_steps`; FormatError on bad shape)."""
    gen, steps = answer_steps(data, where_)
    return _entry(gen, steps, method)


def infrastructure_error(data: Any) -> str | None:
    """Why run-queries marked this answer file as made against a failed backend, else None.

    Same test as run-queries' ``is_answered``: a truthy ``answer_generation.infrastructure_error``.
    """
    gen = data.get("answer_generation") if isinstance(data, dict) else None
    reason = gen.get("infrastructure_error") if isinstance(gen, dict) else None
    return str(reason) if reason else None


def query_id_key(qid: str) -> tuple[int, int, str]:
    """Sort key of query ids: numeric ids in numeric order, then the others by text.

    fixes: "²".isdigit() is true but int() refuses it, and a 5000-digit id exceeds int()'s digit limit
    """
    if qid.isascii() and qid.isdigit() and len(qid) < 30:
        return (0, int(qid), qid)
    return (1, 0, qid)


@dataclass
class Conversion:
    """What :func:`convert_answers` found in one answer folder."""

    answers: dict[str, ConvertedAnswer]  # query id → converted entry, ids sorted
    matched: int = 0  # *.json files whose name has the method
    other_files: list[str] = field(default_factory=list)  # *.json files without it (first few)
    infrastructure_errors: dict[str, str] = field(default_factory=dict)  # skipped: query id → reason
    shortened: list[str] = field(default_factory=list)  # ids whose chain was cut to MAX_DETAIL_NODES


def convert_answers(answer_dir: str | os.PathLike, method: str) -> Conversion:
    """Every ``<query_id>_…<method>….json`` in ``answer_dir`` → :class:`Conversion` (ids sorted).

    Answer files marked ``infrastructure_error`` are skipped and listed; any unreadable, non-JSON or
    wrongly shaped file raises a one-line FormatError naming it (and the field).
    """
    answer_dir = Path(answer_dir)
    if not answer_dir.exists():
        raise FormatError(f"{answer_dir}: no such answer folder", "missing file")
    if not answer_dir.is_dir():
        raise FormatError(f"{answer_dir}: is a file, expected a folder of answer files", "not a folder")
    result = Conversion(answers={})
    out = result.answers
    for path in sorted(answer_dir.glob("*.json")):
        if method not in path.name:
            if len(result.other_files) < 3:
                result.other_files.append(path.name)
            continue
        result.matched += 1
        qid = path.name.split("_")[0]
        data = read_json(path, expect=dict)
        reason = infrastructure_error(data)
        if reason is not None:
            result.infrastructure_errors[qid] = reason
            continue
        if qid in out:
            log.warning("%s: a second answer for query %s replaces the first", path, qid)
        try:
            gen, steps = answer_steps(data, str(path))
            out[qid] = _entry(gen, steps, method)
            simulated = simulated_observations(data, gen)
            if simulated is not None:
                out[qid]["simulated_observations"] = simulated
            json.dumps(out[qid])  # what cannot be written must fail here, naming its file
        except (RecursionError, ValueError) as e:
            if isinstance(e, FormatError):
                raise
            raise FormatError(
                f"{path}: cannot be converted ({type(e).__name__})", "not convertible"
            ) from None
        if len(steps) + 2 > MAX_DETAIL_NODES:
            result.shortened.append(qid)
    result.answers = dict(sorted(out.items(), key=lambda kv: query_id_key(kv[0])))
    return result


def convert_answer_dir(answer_dir: str | os.PathLike, method: str) -> dict[str, ConvertedAnswer]:
    """Every ``<query_id>_…<method>….json`` in ``answer_dir`` → ``{query_id: converted}``, ids sorted."""
    return convert_answers(answer_dir, method).answers


# ----------------------------------------------------------------------------- reading


def read_converted(path: str | os.PathLike) -> dict[str, ConvertedAnswer]:
    """Read and validate a converted file; errors (FormatError, one line) name the file, the query id and
    the field."""
    data = read_json(path, expect=dict)
    for qid, entry in data.items():
        at = f"{os.fspath(path)}: query {qid}"
        if not isinstance(entry, dict) or not isinstance(entry.get("query"), str):
            raise FormatError(f"{at}: missing field 'query'", "missing 'query'")
        answer = entry.get("answer")
        if not isinstance(answer, dict) or not isinstance(answer.get("answer_details"), list):
            raise FormatError(f"{at}: missing field 'answer.answer_details'", "missing 'answer_details'")
        if not isinstance(entry.setdefault("available_tools", []), list):
            raise FormatError(f"{at}: field 'available_tools' should be a list", "bad 'available_tools'")
        answer.setdefault("final_answer", "")
        simulated = entry.get("simulated_observations", 0)
        if not isinstance(simulated, int) or isinstance(simulated, bool) or simulated < 0:
            raise FormatError(
                f"{at}: field 'simulated_observations' should be a count", "bad 'simulated_observations'"
            )
        level, depth = answer["answer_details"], 0
        while level:  # the chain answer_chain() walks: every first child an object, every "next" a list
            node = level[0]
            if not isinstance(node, dict) or not isinstance(node.get("next") or [], list):
                raise FormatError(
                    f"{at}: field 'answer.answer_details': node {depth} should be an object with a 'next' list"
                )
            level, depth = node.get("next") or [], depth + 1
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

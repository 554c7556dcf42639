"""Provenance of tool observations: the ``source`` the tool server puts in each answer (DESIGN §6).

``cache-real`` a cached real response (StableToolBench's imported cache, trajectories, an upstream reply
cached earlier), ``upstream`` a live real call, ``simulated:<format>:<model>`` a simulator's invention
(fresh or cached), ``registered`` an in-process registered tool, ``none`` no backend could answer. The
environment records it per observation (``ToolEnv.last_source``), answer files per node, ToolEval splits
pass rates by it. Cache rows name how they got there: ``trajectory``, ``stb-cache``, ``upstream`` or
``simulated:…``.
"""

from __future__ import annotations

from typing import Any

ACTION_INPUT = "Action Input"  # the search-tree node that holds a step's observation

CACHE_REAL = "cache-real"
UPSTREAM = "upstream"
REGISTERED = "registered"
NO_SOURCE = "none"
SIMULATED_PREFIX = "simulated:"
#: Every answer's source is one of these or starts with SIMULATED_PREFIX.
FIXED_SOURCES = (REGISTERED, CACHE_REAL, UPSTREAM, NO_SOURCE)
#: How a cache row got there (its ``source`` column), besides ``upstream`` and ``simulated:…``.
TRAJECTORY = "trajectory"
STB_IMPORT = "stb-cache"
#: What servers before these names called a simulated answer (answer files may still hold it).
LEGACY_SIMULATED = "simulator"


def simulated_source(fmt: str, model: str) -> str:
    return f"{SIMULATED_PREFIX}{fmt}:{model}"


def is_simulated(source: Any) -> bool:
    """Whether a source (of an answer, an answer-file node or a cache row) is a simulator's invention."""
    return isinstance(source, str) and (source.startswith(SIMULATED_PREFIX) or source == LEGACY_SIMULATED)


def is_source(source: Any) -> bool:
    """Whether ``source`` is a name a server answer may carry."""
    return isinstance(source, str) and (source in FIXED_SOURCES or source.startswith(SIMULATED_PREFIX))


def served_source(row_source: str) -> str:
    """The answer's source for a cache row: simulated rows keep their name, real ones are ``cache-real``."""
    if row_source == LEGACY_SIMULATED:  # rows of caches written before format and model were recorded
        return simulated_source("project", "unknown")
    return row_source if is_simulated(row_source) else CACHE_REAL


# --- in answer files ---------------------------------------------------------------------------


def _all_nodes(root: dict) -> list[dict]:
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        children = node.get("children") or []
        if isinstance(children, list):
            stack += [c for c in reversed(children) if isinstance(c, dict)]
    return nodes


def _steps_seen(chain: list[dict]) -> list[tuple[Any, Any]]:
    """(arguments, observation) of each executed step of a chain of search nodes."""
    return [
        (n.get("description", ""), n.get("observation", ""))
        for n in chain
        if isinstance(n, dict) and n.get("node_type") == ACTION_INPUT
    ]


def _tree_path(root: dict, expected: list[tuple[Any, Any]]) -> list[dict] | None:
    """The Action Input nodes of the tree path whose steps are ``expected`` (the root excluded), or None."""
    stack = [(child, 0, []) for child in reversed(root.get("children") or []) if isinstance(child, dict)]
    while stack:
        node, i, path = stack.pop()
        if node.get("node_type") == ACTION_INPUT:
            if (
                i >= len(expected)
                or (node.get("description", ""), node.get("observation", "")) != expected[i]
            ):
                continue
            i, path = i + 1, path + [node]
            if i == len(expected):
                return path
        children = node.get("children") or []
        if isinstance(children, list):
            stack += [(c, i, path) for c in reversed(children) if isinstance(c, dict)]
    return None


def simulated_observations(data: dict, gen: dict) -> int | None:
    """How many observations of the judged chain a simulator invented (any node of the tree and tries,
    for an answer without valid data or whose chain is not found in them); None when the answer file
    records no provenance (``answer_generation.observation_sources``)."""
    sources = gen.get("observation_sources")
    if not isinstance(sources, dict):
        return None
    if not any(is_simulated(s) and n for s, n in sources.items()):
        return 0
    tree = data.get("tree")
    root = tree.get("tree") if isinstance(tree, dict) else None
    candidates, trys = data.get("compare_candidates"), data.get("trys")
    chains = [c for c in candidates if isinstance(c, list)] if isinstance(candidates, list) else []
    if isinstance(trys, list):
        chains += [t["chain"] for t in trys if isinstance(t, dict) and isinstance(t.get("chain"), list)]
    # the tree holds every node once; chains (copies of its paths) stand in when there is none
    nodes = _all_nodes(root) if isinstance(root, dict) else [n for c in chains for n in c]
    chain_messages = gen.get("train_messages") or [[]]
    messages = chain_messages[-1] if isinstance(chain_messages, list) else None
    if gen.get("valid_data") and isinstance(messages, list):
        expected = [
            (m["function_call"].get("arguments", ""), nxt.get("content", ""))
            for m, nxt in zip(messages, messages[1:])
            if isinstance(m, dict)
            and isinstance(nxt, dict)
            and isinstance(m.get("function_call"), dict)
            and nxt.get("role") == "function"
        ]
        path = next((c for c in chains if _steps_seen(c) == expected), None)
        if path is None and isinstance(root, dict) and expected:
            path = _tree_path(root, expected)
        if path is not None:
            nodes = path
    return sum(
        1
        for n in nodes
        if isinstance(n, dict)
        and n.get("node_type") == ACTION_INPUT
        and is_simulated(n.get("observation_source"))
    )

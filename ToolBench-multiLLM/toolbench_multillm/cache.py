"""SQLite response cache of the tool server, and ``alpha-umi tools build-cache`` to seed it.

    alpha-umi tools build-cache --answers data/toolbench/answer --cache tool_cache.sqlite

A response is keyed by (category, standardised tool, standardised API, canonical JSON of the input).
Answer files carry no category, so seeded entries use ``""`` and every lookup with a category falls
back to it (DESIGN §4.2). The database runs in WAL mode with one connection per thread, so the
server's concurrent requests read while another writes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from glpft.parsing import FINISH_NAME, parse_function_content
from glpft.prompts import as_text
from toolbench_multillm.tools import (
    function_name,
    pure_api_name,
    split_function_name,
    standardize,
)

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    category TEXT NOT NULL,
    tool TEXT NOT NULL,
    api TEXT NOT NULL,
    input TEXT NOT NULL,
    error TEXT NOT NULL,
    response TEXT NOT NULL,
    source TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (category, tool, api, input)
);
CREATE INDEX IF NOT EXISTS responses_api ON responses (tool, api);
"""

#: Errors our environment (not the tool) wrote into trajectories: transient, never worth replaying.
_ENV_ERRORS = ("No such function name", "request invalid", "request time out", "Timeout error")


def canonical_input(tool_input: Any) -> str:
    """Canonical JSON of a tool input: sorted keys, no spaces, UTF-8; unparsable text is kept stripped."""
    if isinstance(tool_input, str):
        text = tool_input.strip()
        if text == "":
            return "{}"
        try:
            tool_input = json.loads(text, strict=False)
        except json.JSONDecodeError:
            return text
    if tool_input is None:
        return "{}"
    return json.dumps(tool_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(tool: str, api: str) -> tuple[str, str]:
    """(tool, api) as the cache stores them: ``standardize(tool)``, ``change_name(standardize(api))``."""
    return standardize(tool), pure_api_name(api)


@dataclass(frozen=True)
class CachedResponse:
    error: str
    response: str
    source: str


class ResponseCache:
    """A tool-response table in one SQLite file (thread-safe: one connection per thread)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def journal_mode(self) -> str:
        return self._conn().execute("PRAGMA journal_mode").fetchone()[0]

    def _keys(self, category: str, tool: str, api: str) -> Iterator[tuple[str, str, str]]:
        """Lookup order: exact category, then no category, then the key an answer file would give
        the same function name (split at its first ``_for_``, after the 64-character cut)."""
        tool, api = cache_key(tool, api)
        yield category, tool, api
        if category:
            yield "", tool, api
        seeded_api, seeded_tool = split_function_name(function_name(api, tool))
        if (seeded_tool, seeded_api) != (tool, api):
            yield "", seeded_tool, seeded_api

    def get(self, tool: str, api: str, tool_input: Any, category: str = "") -> CachedResponse | None:
        inp = canonical_input(tool_input)
        conn = self._conn()
        for cat, t, a in self._keys(category, tool, api):
            row = conn.execute(
                "SELECT error, response, source FROM responses WHERE category=? AND tool=? AND api=? AND input=?",
                (cat, t, a, inp),
            ).fetchone()
            if row is not None:
                return CachedResponse(*row)
        return None

    def put(
        self,
        tool: str,
        api: str,
        tool_input: Any,
        error: str,
        response: str,
        source: str,
        category: str = "",
        replace: bool = False,
    ) -> bool:
        """Store one response; an existing entry is kept unless ``replace``. Returns whether it was written."""
        tool, api = cache_key(tool, api)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        conn = self._conn()
        with conn:
            cur = conn.execute(
                f"{verb} INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (category, tool, api, canonical_input(tool_input), error, response, source, time.time()),
            )
        return cur.rowcount > 0

    def put_many(self, rows: list[tuple[str, str, str, Any, str, str, str]]) -> int:
        """Insert (category, tool, api, input, error, response, source) rows in one transaction."""
        conn = self._conn()
        now = time.time()
        with conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(c, *cache_key(t, a), canonical_input(i), e, r, s, now) for c, t, a, i, e, r, s in rows],
            )
            return conn.total_changes - before

    def examples(self, tool: str, api: str, limit: int = 5) -> list[tuple[str, str, str]]:
        """Up to ``limit`` cached (input, error, response) of one API, error-free ones first."""
        tool, api = cache_key(tool, api)
        return (
            self._conn()
            .execute(
                "SELECT input, error, response FROM responses WHERE tool=? AND api=? ORDER BY error != '', created LIMIT ?",
                (tool, api, limit),
            )
            .fetchall()
        )

    def knows(self, tool: str, api: str) -> bool:
        """Whether any response of this API is cached."""
        return any(
            self._conn().execute("SELECT 1 FROM responses WHERE tool=? AND api=? LIMIT 1", (t, a)).fetchone()
            for _, t, a in self._keys("", tool, api)
        )

    def keys(self, limit: int | None = None) -> list[tuple[str, str, str, str]]:
        """(category, tool, api, input) of cached entries, in a stable order (benchmarks use them)."""
        sql = "SELECT category, tool, api, input FROM responses ORDER BY tool, api, input"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._conn().execute(sql).fetchall()

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# --- seeding from ToolBench trajectories -----------------------------------------------------


def calls_from_answer(answer: dict[str, Any]) -> Iterator[tuple[str, str, Any, str, str]]:
    """(tool, api, input, error, response) of every real tool call in one answer file.

    Walks every ``train_messages`` chain: an assistant ``function_call`` and the function message after it.
    Calls to functions the answer does not offer (hallucinations), Finish, and errors written by the
    environment itself (timeouts, bad names) are skipped.
    """
    gen = answer.get("answer_generation") if isinstance(answer, dict) else None
    if not isinstance(gen, dict):
        return
    offered = {f.get("name") for f in gen.get("function") or [] if isinstance(f, dict)}
    for chain in gen.get("train_messages") or []:
        if not isinstance(chain, list):
            continue
        for prev, msg in zip(chain, chain[1:]):
            if not (isinstance(prev, dict) and isinstance(msg, dict)) or msg.get("role") != "function":
                continue
            call = prev.get("function_call") if prev.get("role") == "assistant" else None
            if not isinstance(call, dict):
                continue
            name = call.get("name")
            if not isinstance(name, str) or name == FINISH_NAME or name not in offered:
                continue
            parsed = parse_function_content(msg.get("content"), fallback="decode")
            if parsed is None:
                continue
            error, response = as_text(parsed.error or ""), as_text(parsed.response)
            if error.startswith(_ENV_ERRORS):
                continue
            api, tool = split_function_name(name)
            yield tool, api, call.get("arguments", "{}"), error, response


def build_cache(answers_dir: str, cache_path: str) -> Counter:
    """Seed ``cache_path`` from every ``*.json`` answer file under ``answers_dir`` (sorted, recursive)."""
    if not os.path.isdir(answers_dir):
        raise FileNotFoundError(f"{answers_dir}: no such directory")
    cache = ResponseCache(cache_path)
    counts: Counter = Counter()
    files = sorted(
        os.path.join(root, f) for root, _, names in os.walk(answers_dir) for f in names if f.endswith(".json")
    )
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                answer = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            logger.warning("%s: skipped (%s)", path, e)
            counts["unreadable files"] += 1
            continue
        rows = [("", t, a, i, e, r, "trajectory") for t, a, i, e, r in calls_from_answer(answer)]
        counts["files"] += 1
        counts["calls"] += len(rows)
        counts["new entries"] += cache.put_many(rows)
    counts["entries in cache"] = len(cache)
    cache.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alpha-umi tools", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-cache", help="seed a response cache from ToolBench answer files")
    build.add_argument("--answers", required=True, help="<data>/answer (searched recursively)")
    build.add_argument("--cache", required=True, help="SQLite file (created or extended)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        counts = build_cache(args.answers, args.cache)
    except FileNotFoundError as e:
        print(f"alpha-umi tools: {e}", file=sys.stderr)
        return 2
    width = max(map(len, counts))
    for key, value in counts.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

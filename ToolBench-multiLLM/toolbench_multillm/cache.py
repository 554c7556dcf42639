"""SQLite response cache of the tool server, and ``alpha-umi tools`` to fill it or write it out.

    alpha-umi tools build-cache --answers data/toolbench/answer --cache tool_cache.sqlite
    alpha-umi tools import-stb --cache-dir server/tool_response_cache --cache tool_cache.sqlite
    alpha-umi tools export-stb --cache tool_cache.sqlite --out-dir tool_response_cache

Two tables. ``responses`` (the project's rule) keys a response by (category, standardised tool,
standardised API, canonical JSON of the input); answer files carry no category, so seeded entries use
``""`` and every lookup with a category falls back to it (DESIGN §4.2). ``stb_responses`` holds
StableToolBench's cache as it lays it out: (category folder, tool folder, api file, ``str(tool_input)``)
→ its ``{"error", "response"}`` value, in file order (:mod:`toolbench_multillm.stb_cache` imports and
exports it). A response that is not text keeps its JSON type: it is stored as JSON text with ``json = 1``
and read back as the value (DESIGN §6; caches written before that column are migrated on open, or read as
text when they cannot be written). The database runs in WAL mode with one connection per thread, so the
server's concurrent requests read while another writes.

The server's calls never raise: an input with no JSON text is a miss and is not stored, text that
UTF-8 cannot hold (lone surrogates) is stored with U+FFFD, and a failing database is logged and
read as a miss. Opening a path that cannot hold a cache (a folder, a file that is not SQLite, a
missing parent folder) raises a one-line :class:`glpft.formats.FormatError` naming the path.
"""

from __future__ import annotations

import argparse
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

from glpft.formats import FormatError, read_json
from glpft.parsing import FINISH_NAME, parse_function_content
from glpft.prompts import as_text
from toolbench_multillm.cache_keys import (
    UnkeyableInput,
    cache_key,
    canonical_input,
    decode_value,
    encode_value,
    storable,
)
from toolbench_multillm.tools import function_name, split_function_name

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
    json INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (category, tool, api, input)
);
CREATE INDEX IF NOT EXISTS responses_api ON responses (tool, api);
"""

#: Errors our environment (not the tool) wrote into trajectories: transient, never worth replaying.
_ENV_ERRORS = ("No such function name", "request invalid", "request time out", "Timeout error")


#: The columns of a cache's ``responses`` table (an SQLite file with another table is not a cache);
#: files written before JSON-typed responses have the first eight and are migrated.
COLUMNS = ("category", "tool", "api", "input", "error", "response", "source", "created", "json", "meta")
OLD_COLUMNS = COLUMNS[:8]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_cache_path(path: str) -> None:
    """One-line :class:`FormatError` naming ``path`` unless it is an SQLite file or may become one."""
    if path == ":memory:":
        return
    if os.path.isdir(path):
        raise FormatError(f"{path}: is a folder, expected an SQLite cache file", "not a file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FormatError(f"{path}: folder {parent} does not exist", "missing folder")
    if not os.path.exists(path):
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})", "unreadable file") from None
    if head and head != _SQLITE_MAGIC:  # an empty file is an empty database to SQLite
        raise FormatError(f"{path}: not an SQLite database", "not a cache")


@dataclass(frozen=True)
class CachedResponse:
    error: str
    response: Any  # text, or the JSON value (object, list …) as it was cached
    source: str
    meta: str = ""  # simulated rows: JSON {format, model, temperature, seed}


class ResponseCache:
    """A tool-response table in one SQLite file (thread-safe: one connection per thread)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._local = threading.local()
        self._typed = True  # False: an old file that could not be migrated (responses read as text)
        check_cache_path(self.path)
        try:
            with self._conn() as conn:
                columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(responses)"))
                if columns in (COLUMNS, ()):
                    conn.executescript(SCHEMA)
        except sqlite3.Error as e:
            self.close()
            raise FormatError(f"{self.path}: cannot open as an SQLite cache ({e})", "not a cache") from None
        if columns == OLD_COLUMNS:
            self._migrate()
        elif columns not in (COLUMNS, ()):
            self.close()
            raise FormatError(
                f"{self.path}: its 'responses' table is not a tool cache (columns {', '.join(columns)})",
                "not a cache",
            )

    def _migrate(self) -> None:
        """Add the ``json`` and ``meta`` columns to a cache written before them."""
        try:
            with self._conn() as conn:
                conn.execute("ALTER TABLE responses ADD COLUMN json INTEGER NOT NULL DEFAULT 0")
                conn.execute("ALTER TABLE responses ADD COLUMN meta TEXT NOT NULL DEFAULT ''")
            logger.info("%s: migrated (responses may now keep their JSON type)", self.path)
        except sqlite3.Error as e:
            logger.warning("%s: cannot be migrated (%s); its responses are read as text", self.path, e)
            self._typed = False

    @property
    def typed(self) -> bool:
        """False for an old file that could not be migrated: responses are read as text, nothing is added."""
        return self._typed

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (:class:`toolbench_multillm.stb_cache.StbTable` shares the file)."""
        return self._conn()

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
        """The cached answer, or None (also for an input with no JSON text or a failing database)."""
        columns = "error, response, source, json, meta" if self._typed else "error, response, source, 0, ''"
        try:
            inp = canonical_input(tool_input)
            conn = self._conn()
            for cat, t, a in self._keys(storable(category), tool, api):
                row = conn.execute(
                    f"SELECT {columns} FROM responses WHERE category=? AND tool=? AND api=? AND input=?",
                    (cat, t, a, inp),
                ).fetchone()
                if row is not None:
                    return CachedResponse(row[0], decode_value(row[1], row[3]), row[2], row[4])
        except UnkeyableInput:
            pass
        except (sqlite3.Error, OverflowError) as e:
            logger.error("%s: cache read failed (%s)", self.path, e)
        return None

    def put(
        self,
        tool: str,
        api: str,
        tool_input: Any,
        error: str,
        response: Any,
        source: str,
        category: str = "",
        replace: bool = False,
        meta: str = "",
    ) -> bool:
        """Store one response (text, or any JSON value: it keeps its type); an existing entry is kept unless
        ``replace``. Returns whether it was written (never raises: an unkeyable input or value, or a failing
        database, is a ``False``, the latter logged)."""
        tool, api = cache_key(tool, api)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        try:
            text, is_json = encode_value(response)
            row = (storable(category), tool, api, canonical_input(tool_input), storable(error), text)
            row += (storable(source), time.time(), is_json, storable(meta))
            conn = self._conn()
            with conn:
                cur = conn.execute(f"{verb} INTO responses ({', '.join(COLUMNS)}) VALUES ({_MARKS})", row)
        except UnkeyableInput:
            return False
        except (sqlite3.Error, OverflowError) as e:
            logger.error("%s: cache write failed (%s)", self.path, e)
            return False
        return cur.rowcount > 0

    def put_many(self, rows: list[tuple[str, str, str, Any, str, Any, str]]) -> int:
        """Insert (category, tool, api, input, error, response, source) rows in one transaction; rows whose
        input or response has no JSON text are skipped. A failing database is a :class:`FormatError`."""
        conn = self._conn()
        now = time.time()
        values = []
        for c, t, a, i, e, r, s in rows:
            try:
                key, (text, is_json) = canonical_input(i), encode_value(r)
            except UnkeyableInput:
                continue
            values.append(
                (storable(c), *cache_key(t, a), key, storable(e), text, storable(s), now, is_json, "")
            )
        try:
            with conn:
                before = conn.total_changes
                conn.executemany(
                    f"INSERT OR IGNORE INTO responses ({', '.join(COLUMNS)}) VALUES ({_MARKS})", values
                )
                return conn.total_changes - before
        except (sqlite3.Error, OverflowError) as e:
            raise FormatError(f"{self.path}: cache write failed ({e})", "cache write failed") from None

    def examples(self, tool: str, api: str, limit: int = 5) -> list[tuple[str, str, str]]:
        """Up to ``limit`` cached (input, error, response text) of one API, error-free ones first ([] when
        the database fails)."""
        tool, api = cache_key(tool, api)
        try:
            return (
                self._conn()
                .execute(
                    "SELECT input, error, response FROM responses WHERE tool=? AND api=? ORDER BY error != '', created LIMIT ?",
                    (tool, api, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as e:
            logger.error("%s: cache read failed (%s)", self.path, e)
            return []

    def knows(self, tool: str, api: str) -> bool:
        """Whether any response of this API is cached (False when the database fails)."""
        try:
            return any(
                self._conn()
                .execute("SELECT 1 FROM responses WHERE tool=? AND api=? LIMIT 1", (t, a))
                .fetchone()
                for _, t, a in self._keys("", tool, api)
            )
        except sqlite3.Error as e:
            logger.error("%s: cache read failed (%s)", self.path, e)
            return False

    def keys(self, limit: int | None = None) -> list[tuple[str, str, str, str]]:
        """(category, tool, api, input) of cached entries, in a stable order (benchmarks use them)."""
        sql = "SELECT category, tool, api, input FROM responses ORDER BY tool, api, input"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._conn().execute(sql).fetchall()

    def project_rows(self) -> Iterator[tuple[str, str, str, str, str, Any, str]]:
        """Every (category, tool, api, input, error, response, source) of the project's table, in order."""
        columns = "category, tool, api, input, error, response, source, " + ("json" if self._typed else "0")
        for row in self._conn().execute(
            f"SELECT {columns} FROM responses ORDER BY category, tool, api, input"
        ):
            yield (*row[:5], decode_value(row[5], row[7]), row[6])

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


_MARKS = ", ".join("?" * len(COLUMNS))


# --- seeding from ToolBench trajectories -----------------------------------------------------


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def calls_from_answer(answer: Any) -> Iterator[tuple[str, str, Any, str, str]]:
    """(tool, api, input, error, response) of every real tool call in one answer file.

    Walks every ``train_messages`` chain: an assistant ``function_call`` and the function message after it.
    Calls to functions the answer does not offer (hallucinations), Finish, and errors written by the
    environment itself (timeouts, bad names) are skipped, and so is anything without the expected shape.
    """
    gen = answer.get("answer_generation") if isinstance(answer, dict) else None
    if not isinstance(gen, dict):
        return
    names = (f.get("name") for f in _list(gen.get("function")) if isinstance(f, dict))
    offered = {name for name in names if isinstance(name, str)}
    for chain in _list(gen.get("train_messages")):
        for prev, msg in zip(_list(chain), _list(chain)[1:]):
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
            try:
                error, response = as_text(parsed.error or ""), as_text(parsed.response)
            except (ValueError, TypeError, RecursionError):  # a value with no JSON text
                continue
            if error.startswith(_ENV_ERRORS):
                continue
            api, tool = split_function_name(name)
            yield tool, api, call.get("arguments", "{}"), error, response


def build_cache(answers_dir: str, cache_path: str) -> Counter:
    """Seed ``cache_path`` from every ``*.json`` answer file under ``answers_dir`` (sorted, recursive).

    Unreadable files are logged, counted and skipped. A missing folder is a :class:`FileNotFoundError`;
    a folder without answer files or without any tool call, and a ``cache_path`` that cannot hold a
    cache, are a one-line :class:`FormatError` (the cache is only created once there is a call to store).
    """
    if not os.path.isdir(answers_dir):
        raise FileNotFoundError(f"{answers_dir}: no such directory")
    check_cache_path(cache_path)
    # an existing file is opened first, so a database that is not a cache fails before any work
    cache = ResponseCache(cache_path) if os.path.exists(cache_path) else None
    try:
        return _seed(answers_dir, cache_path, cache)
    finally:
        if cache is not None:
            cache.close()


def _seed(answers_dir: str, cache_path: str, cache: ResponseCache | None) -> Counter:
    files = sorted(
        os.path.join(root, f) for root, _, names in os.walk(answers_dir) for f in names if f.endswith(".json")
    )
    if not files:
        raise FormatError(f"{answers_dir}: no answer files (*.json) found", "no answers")
    counts: Counter = Counter()
    for path in files:
        try:
            rows = [("", t, a, i, e, r, "trajectory") for t, a, i, e, r in calls_from_answer(read_json(path))]
        except FormatError as e:  # its message names the file
            logger.warning("skipped: %s", e)
            counts["unreadable files"] += 1
            continue
        counts["files"] += 1
        counts["calls"] += len(rows)
        if rows:
            cache = cache or ResponseCache(cache_path)
            counts["new entries"] += cache.put_many(rows)
    if cache is None or counts["calls"] == 0:
        raise FormatError(
            f"{answers_dir}: no tool calls found in {len(files)} answer files"
            f" ({counts['unreadable files']} unreadable); nothing written to {cache_path}",
            "no calls",
        )
    counts["entries in cache"] = len(cache)
    cache.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alpha-umi tools", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-cache", help="seed a response cache from ToolBench answer files")
    build.add_argument("--answers", required=True, help="<data>/answer (searched recursively)")
    build.add_argument("--cache", required=True, help="SQLite file (created or extended)")
    imp = sub.add_parser("import-stb", help="add StableToolBench's tool_response_cache folder to a cache")
    imp.add_argument(
        "--cache-dir", "--cache_dir", dest="cache_dir", required=True, help="tool_response_cache"
    )
    imp.add_argument("--cache", required=True, help="SQLite file (created or extended)")
    exp = sub.add_parser("export-stb", help="write a cache out in StableToolBench's folder layout")
    exp.add_argument("--cache", required=True, help="SQLite file")
    exp.add_argument(
        "--out-dir", "--out_dir", dest="out_dir", required=True, help="folder (merged if present)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "build-cache":
            counts = build_cache(args.answers, args.cache)
        else:
            from toolbench_multillm import stb_cache

            if args.command == "import-stb":
                counts = stb_cache.import_stb(args.cache_dir, args.cache)
            else:
                counts = stb_cache.export_stb(args.cache, args.out_dir)
    except (FileNotFoundError, FormatError) as e:
        print(f"alpha-umi tools {args.command}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder or file that cannot be written (permissions, a full disk …)
        print(f"alpha-umi tools {args.command}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    width = max(map(len, counts))
    for key, value in counts.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

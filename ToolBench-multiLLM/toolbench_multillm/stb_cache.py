"""StableToolBench's cache as it is distributed: ``tool_response_cache/<category>/<tool>/<api>.json``.

    alpha-umi tools import-stb --cache-dir server/tool_response_cache --cache tool_cache.sqlite
    alpha-umi tools export-stb --cache tool_cache.sqlite --out-dir tool_response_cache
    alpha-umi serve-tools --cache tool_cache.sqlite --stb-cache-dir server/tool_response_cache

Each api file is a JSON object keyed by ``str(tool_input)`` with ``{"error", "response"}`` values, found
as its server finds them (:mod:`toolbench_multillm.stb`). :class:`StbTable` keeps that layout in the
SQLite cache (file order included: its simulator's examples are the first entries); :class:`StbFolder`
reads a folder in place (read-only); :func:`import_stb` and :func:`export_stb` move entries between the
two, file by file, idempotently, reporting counts and each unreadable file on one line.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from typing import Any

from glpft.formats import FormatError, read_json, write_json_atomic
from toolbench_multillm.cache import ResponseCache, check_cache_path
from toolbench_multillm.cache_keys import SURROGATE, UnkeyableInput, decode_value, encode_value, storable
from toolbench_multillm.sources import STB_IMPORT
from toolbench_multillm.stb import StbLocation, stb_key, stb_location

logger = logging.getLogger(__name__)

#: ``seq`` keeps the order of the files' keys (its GPT simulator shows the first entries as examples).
STB_SCHEMA = """
CREATE TABLE IF NOT EXISTS stb_responses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    category TEXT NOT NULL,
    tool TEXT NOT NULL,
    api TEXT NOT NULL,
    input TEXT NOT NULL,
    value TEXT NOT NULL,
    source TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    UNIQUE (category, tool, api, input)
);
"""
_BATCH = 5000


def usable_value(value: Any) -> bool:
    """An entry value as its server answers it: an object with a ``response``."""
    return isinstance(value, dict) and "response" in value


def _safe(loc: StbLocation) -> bool:
    """A location that stays inside the folder (names from a file or a request, never a path)."""
    return all(p and os.sep not in p and ".." not in p and not p.startswith(".") for p in loc)


class StbTable:
    """The ``stb_responses`` table of a :class:`ResponseCache` file (created on first use).

    Reads never raise (a failing database is logged and is a miss); :meth:`put_many` raises a one-line
    :class:`FormatError` naming the file."""

    def __init__(self, cache: ResponseCache):
        self.cache = cache
        self.enabled = cache.typed
        if self.enabled:
            try:
                with cache.connection() as conn:
                    conn.executescript(STB_SCHEMA)
            except sqlite3.Error as e:
                logger.warning("%s: no StableToolBench table (%s); its entries are not kept", cache.path, e)
                self.enabled = False

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        if not self.enabled:
            return []
        try:
            return self.cache.connection().execute(sql, args).fetchall()
        except (sqlite3.Error, OverflowError, UnicodeEncodeError) as e:
            logger.error("%s: cache read failed (%s)", self.cache.path, e)
            return []

    def get(self, loc: StbLocation, key: str) -> tuple[Any, str, str] | None:
        """(value, source, meta) cached at ``loc`` under ``key`` (``str(tool_input)``), or None."""
        rows = self._query(
            "SELECT value, source, meta FROM stb_responses WHERE category=? AND tool=? AND api=? AND input=?",
            (*loc, key),
        )
        return (decode_value(rows[0][0], 1), rows[0][1], rows[0][2]) if rows else None

    def items(self, loc: StbLocation, limit: int = -1) -> list[tuple[str, Any]]:
        """(key, value) cached at ``loc`` in the order they were added."""
        rows = self._query(
            "SELECT input, value FROM stb_responses WHERE category=? AND tool=? AND api=? ORDER BY seq LIMIT ?",
            (*loc, limit),
        )
        return [(key, decode_value(text, 1)) for key, text in rows]

    def knows(self, loc: StbLocation) -> bool:
        return bool(
            self._query("SELECT 1 FROM stb_responses WHERE category=? AND tool=? AND api=? LIMIT 1", loc)
        )

    def put(self, loc: StbLocation, key: str, value: Any, source: str, meta: str = "") -> bool:
        """Add one value (an existing key is kept); never raises."""
        try:
            return self.put_many([(loc, key, value, source)], meta) > 0
        except FormatError as e:
            logger.error("%s", e)
            return False

    def put_many(self, rows: list[tuple[StbLocation, str, Any, str]], meta: str = "") -> int:
        """Add (location, key, value, source) rows in order in one transaction; existing keys are kept and
        rows SQLite cannot hold (no JSON text, lone surrogates in a name or key) skipped. Returns how many
        were added."""
        if not self.enabled:
            raise FormatError(
                f"{self.cache.path}: cannot hold StableToolBench entries (read-only?)", "read-only"
            )
        now, values = time.time(), []
        for loc, key, value, source in rows:
            if any(SURROGATE.search(part) for part in (*loc, key)):
                continue
            try:
                text, _ = encode_value(value)
            except UnkeyableInput:
                continue
            values.append((*loc, key, text, storable(source), storable(meta), now))
        conn = self.cache.connection()
        try:
            with conn:
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO stb_responses (category, tool, api, input, value, source, meta, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                return conn.total_changes - before
        except (sqlite3.Error, OverflowError) as e:
            raise FormatError(f"{self.cache.path}: cache write failed ({e})", "cache write failed") from None

    def rows(self) -> Iterator[tuple[StbLocation, str, Any]]:
        """Every (location, key, value), by location, in file order."""
        if not self.enabled:
            return
        sql = "SELECT category, tool, api, input, value FROM stb_responses ORDER BY category, tool, api, seq"
        for c, t, a, key, text in self.cache.connection().execute(sql):
            yield StbLocation(c, t, a), key, decode_value(text, 1)

    def __len__(self) -> int:
        rows = self._query("SELECT COUNT(*) FROM stb_responses")
        return rows[0][0] if rows else 0


class StbFolder:
    """A ``tool_response_cache`` folder served in place, read-only: each api file is read as its server
    reads it (the parsed files of the most recent APIs are kept, re-read when they change on disk)."""

    def __init__(self, root: str, max_files: int = 256):
        if not os.path.isdir(root):
            raise FormatError(f"{root}: no such directory (expected StableToolBench's tool_response_cache)")
        self.root = os.path.abspath(root)
        self.max_files = max_files
        self._files: OrderedDict[str, tuple[tuple[int, int], dict]] = OrderedDict()
        self._lock = threading.Lock()

    def entries(self, loc: StbLocation) -> dict[str, Any]:
        """The api file's entries in file order; ``{}`` when absent or unreadable (logged), as its server."""
        if not _safe(loc):
            return {}
        path = loc.path(self.root)
        try:
            st = os.stat(path)
        except OSError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            kept = self._files.get(path)
            if kept is not None and kept[0] == stamp:
                self._files.move_to_end(path)
                return kept[1]
        try:
            data = read_json(path, expect=dict)
        except FormatError as e:
            logger.warning("StableToolBench cache file unreadable: %s", e)
            data = {}
        with self._lock:
            self._files[path] = (stamp, data)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        return data

    def get(self, loc: StbLocation, key: str) -> Any | None:
        value = self.entries(loc).get(key)
        return value if usable_value(value) else None


# --- import and export -------------------------------------------------------------------------


def api_files(cache_dir: str) -> Iterator[tuple[StbLocation, str]]:
    """(location, path) of every ``<category>/<tool>/<api>.json`` under ``cache_dir``, sorted."""

    def folders(path: str) -> list[str]:
        return sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))

    for category in folders(cache_dir):
        for tool in folders(os.path.join(cache_dir, category)):
            tool_dir = os.path.join(cache_dir, category, tool)
            for name in sorted(os.listdir(tool_dir)):
                path = os.path.join(tool_dir, name)
                if name.endswith(".json") and os.path.isfile(path):
                    yield StbLocation(category, tool, name[: -len(".json")]), path


def import_stb(cache_dir: str, cache_path: str) -> Counter:
    """Add every entry of a StableToolBench cache folder to ``cache_path`` (existing keys are kept, so a
    second run adds nothing). Unreadable files and values that are not ``{"error", "response"}`` objects
    are logged on one line and counted. A missing folder is a :class:`FileNotFoundError`; a folder
    without api files and a ``cache_path`` that cannot hold a cache are a one-line :class:`FormatError`."""
    if not os.path.isdir(cache_dir):
        raise FileNotFoundError(
            f"{cache_dir}: no such directory (expected StableToolBench's tool_response_cache)"
        )
    check_cache_path(cache_path)
    files = api_files(cache_dir)
    first = next(files, None)
    if first is None:
        raise FormatError(f"{cache_dir}: no <category>/<tool>/<api>.json files found", "no cache files")
    cache = ResponseCache(cache_path)
    table, batch = StbTable(cache), []
    counts = Counter({"files": 0, "entries": 0, "new entries": 0, "bad entries": 0, "unreadable files": 0})
    try:
        for loc, path in itertools.chain([first], files):
            try:
                data = read_json(path, expect=dict)
            except FormatError as e:  # its message names the file
                logger.warning("skipped: %s", e)
                counts["unreadable files"] += 1
                continue
            counts["files"] += 1
            for key, value in data.items():
                counts["entries"] += 1
                if usable_value(value):
                    batch.append((loc, key, value, STB_IMPORT))
                else:
                    counts["bad entries"] += 1
            if len(batch) >= _BATCH:
                counts["new entries"] += table.put_many(batch)
                batch = []
        counts["new entries"] += table.put_many(batch)
        counts["StableToolBench entries in cache"] = len(table)
    finally:
        cache.close()
    if counts["bad entries"]:
        logger.warning("%d values were not {error, response} objects: not imported", counts["bad entries"])
    return counts


def _project_entries(cache: ResponseCache, counts: Counter) -> dict[StbLocation, list[tuple[str, Any]]]:
    """The project table's rows at the locations StableToolBench would look them up (rows without a
    category or with a text input it would not parse are counted and left out)."""
    out: dict[StbLocation, list[tuple[str, Any]]] = {}
    for category, tool, api, inp, error, response, _ in cache.project_rows():
        if not category:
            counts["rows without a category (not exported)"] += 1
            continue
        try:
            parsed = json.loads(inp)
        except (ValueError, RecursionError):  # text keyed as text: StableToolBench answers a parse error
            counts["rows with a non-JSON input (not exported)"] += 1
            continue
        out.setdefault(stb_location(category, tool, api), []).append(
            (stb_key(parsed), {"error": error, "response": response})
        )
    return out


def export_stb(cache_path: str, out_dir: str) -> Counter:
    """Write the cache's entries into ``out_dir`` in StableToolBench's layout: its own table in file order,
    then the project's rows that have a category (keyed ``str()`` of the parsed input). Files already
    there are merged, their entries kept (a second run writes nothing); an unreadable one is left alone
    and reported. Bad paths are one-line :class:`FormatError`\\ s."""
    if not os.path.isfile(cache_path):
        raise FormatError(f"{cache_path}: no such cache file", "missing file")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FormatError(f"{out_dir}: is a file, expected a folder", "not a folder")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise FormatError(f"{out_dir}: folder {parent} does not exist", "missing folder")
    cache = ResponseCache(cache_path)
    counts: Counter = Counter(
        {"files written": 0, "entries written": 0, "entries already there": 0, "unreadable files": 0}
    )
    try:
        project = _project_entries(cache, counts)
        table = StbTable(cache)
        groups = itertools.groupby(table.rows(), key=lambda row: row[0])
        for loc, rows in groups:
            _write_file(out_dir, loc, [(k, v) for _, k, v in rows] + project.pop(loc, []), counts)
        for loc in sorted(project):
            _write_file(out_dir, loc, project[loc], counts)
    finally:
        cache.close()
    return counts


def _write_file(out_dir: str, loc: StbLocation, entries: list[tuple[str, Any]], counts: Counter) -> None:
    if not _safe(loc):
        counts["entries at unsafe locations (not exported)"] += len(entries)
        return
    path = loc.path(out_dir)
    merged: dict[str, Any] = {}
    if os.path.exists(path):
        try:
            merged = read_json(path, expect=dict)
        except FormatError as e:
            logger.warning("left alone: %s", e)
            counts["unreadable files"] += 1
            return
    added = 0
    for key, value in entries:
        if key in merged:
            counts["entries already there"] += 1
        else:
            merged[key] = value
            added += 1
    if added:
        write_json_atomic(path, merged, indent=4, ensure_ascii=True)  # as its server writes them
        counts["files written"] += 1
        counts["entries written"] += added

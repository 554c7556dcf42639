"""On-disk records of the GLPFT data path (DESIGN §3.1–3.4) and their streaming reader/writer.

Files are JSON lists written exactly as ``json.dump(rows, f, indent=2)`` (the original format, so
existing preprocessed data stays usable), but one row at a time: neither side holds a whole file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any, TypedDict


class Tool(TypedDict):
    """α-UMi prompt tool entry (DESIGN §3.2)."""

    Name: str
    function: str
    input: dict[str, str]


#: One stage-2 conversation turn; ``from`` is user/assistant/caller/observation/conclusion
#: (a Python keyword, hence the functional form).
Turn = TypedDict("Turn", {"from": str, "value": str})


class Stage1Record(TypedDict):
    tools: list[Tool]
    instruction: str
    chains: list[dict[str, Any]]


class Stage2Record(TypedDict):
    tools: list[Tool]
    instruction: str
    conversations: list[Turn]


class RoleSample(TypedDict):
    """One GLPFT training sample: ``input`` is the filled prompt, ``target`` the text to learn."""

    tools: list[Tool]
    history: list[Turn]
    input: str
    target: str


class FormatError(ValueError):
    """The project's one error for bad input: a file, record or field without the expected shape.

    The message is one line that names the file, then the record and the field when known
    (:func:`where` spells that prefix); ``reason`` is a short category used to count skipped inputs.
    """

    def __init__(self, message: str, reason: str = "malformed record"):
        super().__init__(message)
        self.reason = reason


def where(path: str | os.PathLike, record: Any = None, field: str | None = None) -> str:
    """``<path>: <record>: field '<field>'`` — the prefix of every bad-input message.

    ``record`` is a label (``"record 3"``, ``"query 12"``) or an int (rendered ``record N``).
    """
    text = os.fspath(path)
    if record is not None:
        text += f": record {record}" if isinstance(record, int) else f": {record}"
    if field is not None:
        text += f": field '{field}'"
    return text


def _json_problem(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8/16/32 text"
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    text = str(e)
    if "integer string conversion" in text:
        return "an integer with too many digits"
    return (text.splitlines() or [type(e).__name__])[0][:200]


def loads_json(text: str | bytes, where_: str) -> Any:
    """``json.loads`` whose every failure (syntax, deep nesting, huge integers, bad bytes) is a
    one-line :class:`FormatError` naming ``where_``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FormatError(f"{where_}: not valid JSON ({_json_problem(e)})", "not JSON") from None


def read_json(path: str | os.PathLike, expect: type | tuple[type, ...] | None = None) -> Any:
    """A whole JSON file, with one-line errors for a missing path, a folder, unreadable bytes, bad JSON
    and (with ``expect``) the wrong top-level type."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise FormatError(f"{path}: is a folder, expected a JSON file", "not a file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file", "missing file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})", "unreadable file") from None
    value = loads_json(data, path)
    if expect is not None and not isinstance(value, expect):
        raise FormatError(
            f"{path}: expected {_kind(expect)}, got {_kind(type(value))}", "wrong top-level type"
        )
    return value


_KIND_NAMES = {
    list: "a JSON list",
    dict: "a JSON object",
    str: "a string",
    int: "a number",
    float: "a number",
}


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if kinds == (type(None),):
        return "null"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def dumps_row(row: Any) -> str:
    """A row as it appears inside a ``json.dump(rows, indent=2)`` list (already indented by 2)."""
    # JSON escapes newlines inside strings, so every raw newline here is structural.
    return json.dumps(row, indent=2).replace("\n", "\n  ")


class JsonListWriter:
    """Append rows to a JSON list file, byte-identical to ``json.dump(rows, f, indent=2)``.

    Writes to a temporary file beside the target and renames it on ``close()`` (atomic); a writer
    left unclosed after an error leaves the target untouched.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".json", dir=directory)
        self._f = os.fdopen(fd, "w", encoding="utf-8")
        self.count = 0

    def write(self, row: Any) -> None:
        self.write_serialised(dumps_row(row))

    def write_serialised(self, text: str) -> None:
        """Append a row already serialised by :func:`dumps_row` (lets workers do the encoding)."""
        self._f.write(("[\n  " if self.count == 0 else ",\n  ") + text)
        self.count += 1

    def close(self) -> None:
        self._f.write("\n]" if self.count else "[]")
        self._f.close()
        _publish(self._tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> JsonListWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _publish(tmp: str, path: str) -> None:
    """Give a finished temp file the usual permissions (mkstemp makes it 0600) and rename it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` via a temp file in the same folder + rename: readers never see half a file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(
    path: str | os.PathLike, obj: Any, indent: int | None = None, ensure_ascii: bool = False
) -> None:
    """``json.dumps(obj)`` written atomically (the project's one JSON writer for results).

    Text that cannot be UTF-8 (a lone surrogate a model or an endpoint produced) is written escaped
    (``\\ud800``) instead of failing the write.
    """
    write_text_atomic(path, json_text(obj, indent, ensure_ascii))


def json_text(obj: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    """``json.dumps(obj)`` with non-ASCII text kept readable, unless it holds lone surrogates (which
    UTF-8 cannot store): then escaped, so nothing is lost and the write works."""
    text = json.dumps(obj, ensure_ascii=ensure_ascii, indent=indent)
    if not ensure_ascii:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(obj, ensure_ascii=True, indent=indent)
    return text


def iter_json_list(path: str | os.PathLike) -> Iterator[Any]:
    """Stream the items of a top-level JSON list without loading the file (ijson, C backend)."""
    import ijson

    path = os.fspath(path)
    if os.path.isdir(path):
        raise FormatError(f"{path}: is a folder, expected a JSON file", "not a file")
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file", "missing file")
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not head.startswith(b"["):
            # fixes: a top-level object, string or number used to stream as zero rows without a word
            got = {b"{": "a JSON object", b'"': "a string", b"n": "null", b"": "an empty file"}.get(
                head[:1], "a number" if head[:1] in b"-0123456789" else "a boolean or other text"
            )
            raise FormatError(f"{path}: expected a JSON list, got {got}", "wrong top-level type")
        f.seek(0)
        try:
            yield from ijson.items(f, "item", use_float=True)
        except (ijson.JSONError, UnicodeDecodeError, RecursionError) as e:
            raise FormatError(f"{path}: not a valid JSON list ({_json_problem(e)})", "not JSON") from None


def require(record: Any, field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``record[field]`` checked to be of ``kind``; otherwise a one-line FormatError naming ``where``."""
    if not isinstance(record, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(record).__name__}", "not an object")
    if field not in record:
        raise FormatError(f"{where}: missing field '{field}'", f"missing '{field}'")
    value = record[field]
    if not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise FormatError(
            f"{where}: field '{field}' should be {names}, got {type(value).__name__}", f"bad '{field}'"
        )
    return value


def check_tools(tools: Any, where: str) -> list[Tool]:
    """A record's ``tools``: a list of α-UMi tool entries, each an object with a string ``Name``."""
    if not isinstance(tools, list):
        raise FormatError(
            f"{where}: field 'tools' should be a list, got {type(tools).__name__}", "bad 'tools'"
        )
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("Name"), str):
            raise FormatError(
                f"{where}: field 'tools[{j}]' should be an object with a string 'Name'", "bad 'tools'"
            )
    return tools


def check_stage2(record: Any, where: str) -> Stage2Record:
    """A stage-2 record: ``tools`` (tool entries), ``instruction`` and ``conversations`` of
    ``{"from", "value"}`` string turns; a one-line FormatError names the record and the field."""
    check_tools(require(record, "tools", list, where), where)
    require(record, "instruction", str, where)
    conv = require(record, "conversations", list, where)
    for j, turn in enumerate(conv):
        require(turn, "from", str, f"{where}: conversations[{j}]")
        require(turn, "value", str, f"{where}: conversations[{j}]")
    return record

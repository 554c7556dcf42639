"""The tool server's request validation: what a client may send, and the one-line 4xx reason otherwise.

A call is ``{category, tool_name, api_name, tool_input, strip, toolbench_key}``. Bodies over the limit get
413; bodies that are not a JSON object, nested too deeply, hold integers with too many digits, fields of
the wrong type, lone surrogates (not valid Unicode) or a ``tool_input`` nested deeper than
:data:`MAX_INPUT_DEPTH` get 400 naming the field. Names are never paths (``..``, slashes are refused).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from starlette.requests import ClientDisconnect, Request

from glpft.formats import FormatError, loads_json
from toolbench_multillm.cache_keys import SURROGATE as _SURROGATE

MAX_BODY_BYTES = 1 << 20
#: A body larger than this is not even drained before answering 413 (the connection is dropped).
_DRAIN_LIMIT = 64 << 20
MAX_NAME_LENGTH = 256
#: Deepest nesting accepted in a ``tool_input`` (ToolBench inputs are flat objects).
MAX_INPUT_DEPTH = 32


class BadRequest(Exception):
    """A request the server refuses: the HTTP status and a one-line reason (sent as the ``error``)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def validate_name(value: Any, field_name: str, required: bool = True) -> str:
    """A category/tool/API name, or :class:`BadRequest` naming the field and why."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadRequest(400, f"field '{field_name}' must be a string")
    if value == "" and not required:
        return ""
    if not value or len(value) > MAX_NAME_LENGTH:
        raise BadRequest(400, f"field '{field_name}' must have 1-{MAX_NAME_LENGTH} characters")
    if ".." in value or "/" in value or "\\" in value or value.startswith("."):
        raise BadRequest(
            400,
            f"field '{field_name}' is not a valid name (path-like names are rejected; send standardised names)",
        )
    if _SURROGATE.search(value):
        raise BadRequest(400, f"field '{field_name}' contains a lone surrogate (not valid Unicode)")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise BadRequest(400, f"field '{field_name}' contains control characters")
    return value


def validate_tool_input(value: Any) -> Any:
    """A ``tool_input``: a JSON object or text (text that is not JSON is kept: it is keyed and forwarded
    as written), or :class:`BadRequest` when it is nested too deeply, holds a huge integer or is not
    valid Unicode."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise BadRequest(400, "field 'tool_input' contains a lone surrogate (not valid Unicode)")
        try:
            parsed = json.loads(value, strict=False)
        except RecursionError:
            raise BadRequest(
                400, f"field 'tool_input' is nested deeper than {MAX_INPUT_DEPTH} levels"
            ) from None
        except json.JSONDecodeError:
            return value
        except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
            raise BadRequest(400, "field 'tool_input' holds an integer with too many digits") from None
        _check_json_value(parsed, "tool_input")
        return value
    if isinstance(value, dict):
        _check_json_value(value, "tool_input")
        return value
    raise BadRequest(400, "field 'tool_input' must be a JSON string or object")


def _check_json_value(value: Any, field_name: str) -> None:
    """:class:`BadRequest` when a parsed JSON value nests deeper than MAX_INPUT_DEPTH or holds a lone
    surrogate (iterative: a hostile value cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise BadRequest(400, f"field '{field_name}' contains a lone surrogate (not valid Unicode)")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_INPUT_DEPTH:
            raise BadRequest(400, f"field '{field_name}' is nested deeper than {MAX_INPUT_DEPTH} levels")
        children = list(node.values()) + list(node) if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)


async def read_body(request: Request, limit: int) -> Any:
    """The request body parsed as JSON; 413 past ``limit`` bytes (the body is drained, up to a bound)."""
    length = request.headers.get("content-length")
    too_big = length is not None and length.isdigit() and int(length) > limit
    body = bytearray()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                too_big = True
            if too_big:
                if received > _DRAIN_LIMIT:
                    break
                continue
            body += chunk
    except ClientDisconnect:
        raise BadRequest(400, "client disconnected before the body was read") from None
    if too_big:
        raise BadRequest(413, f"request body larger than {limit} bytes")
    try:  # syntax, deep nesting, huge integers and undecodable bytes are all one-line errors
        return loads_json(bytes(body), "invalid JSON body")
    except FormatError as e:
        raise BadRequest(400, str(e)) from None


def _optional_text(data: dict[str, Any], field_name: str) -> str:
    """``strip`` or ``toolbench_key``: a string, anything else is ignored (as ToolBench's service does)."""
    value = data.get(field_name)
    if not isinstance(value, str):
        return ""
    if _SURROGATE.search(value):
        raise BadRequest(400, f"field '{field_name}' contains a lone surrogate (not valid Unicode)")
    return value


def validate_payload(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object")
    return {
        "category": validate_name(data.get("category"), "category", required=False),
        "tool_name": validate_name(data.get("tool_name"), "tool_name"),
        "api_name": validate_name(data.get("api_name"), "api_name"),
        "tool_input": validate_tool_input(data.get("tool_input", "{}")),
        "strip": _optional_text(data, "strip"),
        "toolbench_key": _optional_text(data, "toolbench_key"),
    }

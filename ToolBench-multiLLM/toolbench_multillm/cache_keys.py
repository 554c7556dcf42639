"""How the tool cache keys a call and stores a value (shared by the SQLite cache, the server and the simulators).

A key is (standardised tool, standardised API) plus the canonical JSON of the input; a stored response
is text, or the JSON text of any other value with a flag saying so (it keeps its JSON type, DESIGN §6).
Text that UTF-8 cannot hold (lone surrogates) never reaches SQLite as is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolbench_multillm.tools import pure_api_name, standardize

SURROGATE = re.compile("[\ud800-\udfff]")


class UnkeyableInput(ValueError):
    """A tool input with no JSON text (nested too deeply, not JSON types): it cannot be a cache key."""


def storable(text: Any) -> str:
    """``text`` as SQLite can store it: a string, lone surrogates (not UTF-8) replaced by U+FFFD."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return SURROGATE.sub("\ufffd", text)


def canonical_input(tool_input: Any) -> str:
    """Canonical JSON of a tool input: sorted keys, no spaces, UTF-8; text that is not JSON is kept stripped.

    Text that UTF-8 cannot hold (lone surrogates) is escaped (``ensure_ascii``), so the key stays
    distinct and storable. A value with no JSON text raises :class:`UnkeyableInput`.
    """
    if isinstance(tool_input, str):
        text = tool_input.strip()
        if text == "":
            return "{}"
        try:
            tool_input = json.loads(text, strict=False)
        except (ValueError, RecursionError):  # not JSON, nested too deeply, huge integers: keyed as text
            return json.dumps(text) if SURROGATE.search(text) else text
    if tool_input is None:
        return "{}"
    try:
        text = json.dumps(tool_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if SURROGATE.search(text):
            text = json.dumps(tool_input, sort_keys=True, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as e:
        raise UnkeyableInput(f"tool input has no JSON text ({type(e).__name__})") from None
    return text


def cache_key(tool: str, api: str) -> tuple[str, str]:
    """(tool, api) as the cache stores them: ``standardize(tool)``, ``change_name(standardize(api))``."""
    return standardize(tool), pure_api_name(api)


def encode_value(value: Any) -> tuple[str, int]:
    """(text, json flag) of a response as stored: text as is, any other value as its JSON text.

    Raises :class:`UnkeyableInput` for a value with no JSON text."""
    if isinstance(value, str):
        return storable(value), 0
    try:
        text = json.dumps(value, ensure_ascii=False)
        if SURROGATE.search(text):
            text = json.dumps(value)
    except (ValueError, TypeError, RecursionError) as e:
        raise UnkeyableInput(f"value has no JSON text ({type(e).__name__})") from None
    return text, 1


def decode_value(text: str, is_json: int) -> Any:
    """The stored response back: its JSON value when flagged (text when it no longer parses)."""
    if not is_json:
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text

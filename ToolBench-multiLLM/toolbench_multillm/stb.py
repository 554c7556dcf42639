"""StableToolBench's tool-server rules (THUNLP-MT/StableToolBench ``server/main.py``, ``utils.py``), written anew.

Where a call lives in its cache: ``tool_response_cache/<category>/<tool>/<api>.json`` (:func:`stb_location`,
its ``prepare_tool_name_and_url``); how it reads the arguments (:func:`parse_input`) and keys them
(:func:`stb_key`: ``str()`` of the parsed value, so key order and non-ASCII text count); which real
replies it caches (:func:`check_result`); and what its simulators are shown (:class:`ToolDocs`: the API
doc read from ``toolenv/tools``; :func:`choose_examples`: cached calls that fit in 2048 characters).
Quirks are kept on purpose (``# paper parity``): the numbers of a comparable evaluation depend on them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from glpft.formats import FormatError, read_json
from toolbench_multillm.tools import change_name, standardize

logger = logging.getLogger(__name__)

#: The answer to arguments that are not JSON (nor ``""`` nor an object).
PARSE_ERROR = "Tool input parse error...\n"
#: Cached calls shown to its GPT simulator, and the characters their ``str()`` may take.
EXAMPLE_COUNT = 5
EXAMPLE_CHARS = 2048


class StbLocation(NamedTuple):
    """Where StableToolBench keeps a call: ``<category>/<tool>/<api>.json`` under its cache folder."""

    category: str
    tool: str
    api: str

    def path(self, root: str) -> str:
        return os.path.join(root, self.category, self.tool, self.api + ".json")


def standardize_category(category: str) -> str:
    """Spaces, commas and slashes → ``_``, then one pass of ``__`` → ``_`` (paper parity: ``a___b`` stays
    ``a__b``, as its ``str.replace`` leaves it)."""
    name = category.replace(" ", "_").replace(",", "_").replace("/", "_")
    return name.replace("__", "_")


def stb_location(category: str, tool_name: str, api_name: str) -> StbLocation:
    """Its ``prepare_tool_name_and_url``: the tool folder is ``standardize(tool) + "_for_" + category``
    unless the name already ends with that suffix (then it is used as sent); the api file is the
    standardised, ``is_``-prefixed api name with ``_for_<tool as sent>`` and what follows cut off."""
    standard_category = standardize_category(category)
    api = change_name(standardize(api_name)).split(f"_for_{tool_name}")[0]
    suffix = f"_for_{standard_category}"
    tool = tool_name if tool_name.endswith(suffix) else standardize(tool_name) + suffix
    return StbLocation(standard_category, tool, api)


def real_tool_name(tool_name: str) -> str:
    """The tool name it sends upstream and to MirrorAPI: the request's, cut at its first ``_for_``."""
    return tool_name.split("_for_")[0]


class StbInputError(ValueError):
    """Arguments StableToolBench answers with :data:`PARSE_ERROR`."""


def parse_input(tool_input: Any) -> Any:
    """Its argument rule: ``json.loads`` of the text (any JSON value), ``""`` → ``{}``, an object stays
    an object; anything else is :class:`StbInputError`."""
    if isinstance(tool_input, dict):
        return tool_input
    try:
        return json.loads(tool_input)  # paper parity: strict (raw control characters are refused)
    except Exception:  # noqa: BLE001 - its own rule: any failure to parse
        if tool_input == "":
            return {}
        raise StbInputError(PARSE_ERROR) from None


def stb_key(parsed: Any) -> str:
    """The cache key of parsed arguments: ``str(tool_input)``, the Python ``repr`` (key order as sent)."""
    return str(parsed)


# paper parity: its check_result, condition by condition (some can never hold, e.g. "API doesn't
# exists" is looked for in lower-cased text; they are kept so that the rule is its rule)
_TRANSIENT = ("rate limit", "time out", "timed out", "does not exist", "404", "504", "500", "internal error")
_REFUSED = (
    "authoriz", "authenticat", "unauthorized", "blocked user", "unsubscribe", "blocked", "401", "403",
    "credential", "unauthenticated", "disabled for your subscription", "invalid consumer key",
)  # fmt: skip
_BAD_CALL = ("parameter", "parse", "is not defined")


def check_result(reply: Any) -> bool:
    """Whether StableToolBench caches a real (upstream) reply: an empty ``error`` and a ``response`` whose
    ``str()`` shows no rate limit, timeout, missing API, 5xx, refused credentials, parameter error or
    emptiness (``got an unexpected keyword argument`` is cached: it is the tool's answer)."""
    if not isinstance(reply, dict) or reply.get("error", None) != "" or "response" not in reply:
        return False
    response = str(reply["response"])
    low = response.lower()
    if "got an unexpected keyword argument" in low:
        return True
    if any(s in low for s in _TRANSIENT) or "API doesn't exists" in low:
        return False
    if response == "{'message': \"API doesn't exists\"}" or "Service Not Found" in response:
        return False
    if any(s in low for s in _REFUSED) or "ACCESS_DENIED" in response:
        return False
    if any(s in low for s in _BAD_CALL) or len(response) == 0:
        return False
    return not ("status_code=50" in response or "status_code=429" in response)


def choose_examples(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Its GPT simulator's examples: the first 5 cached (key, value) items of the api file, fewer while
    their ``str()`` passes 2048 characters (at least one); the prompt then cuts that text at 2048."""
    n = EXAMPLE_COUNT
    chosen = items[:n]
    while len(str(chosen)) > EXAMPLE_CHARS and n > 1:
        n -= 1
        chosen = items[:n]
    return chosen


# --- API docs from toolenv/tools, as its simulators read them -----------------------------------


class ToolDocs:
    """``<tool_root_dir>/<category>/<tool>.json`` read per request as StableToolBench reads them (the
    parsed files of the most recent tools are kept in memory). Never raises for what a file holds."""

    def __init__(self, root: str, max_files: int = 512):
        if not os.path.isdir(root):
            raise FormatError(f"{root}: no such directory (expected toolenv/tools)", "missing folder")
        self.root = os.path.abspath(root)
        self.max_files = max_files
        self._files: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def tool_file(self, standard_category: str, tool_name: str) -> Any:
        """The parsed tool file (``standardize(tool).split("_for_")[0] + ".json"``), or None."""
        name = standardize(tool_name).split("_for_")[0]
        path = os.path.normpath(os.path.join(self.root, standard_category, name + ".json"))
        if not path.startswith(self.root + os.sep) or not os.path.isfile(path):
            return None
        with self._lock:
            if path in self._files:
                self._files.move_to_end(path)
                return self._files[path]
        try:
            data = read_json(path)
        except FormatError as e:
            logger.warning("tool doc unreadable: %s", e)
            data = None
        with self._lock:
            self._files[path] = data
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        return data

    def has_tool(self, loc: StbLocation, tool_name: str) -> bool:
        return self.tool_file(loc.category, tool_name) is not None

    def _matching(self, loc: StbLocation, tool_name: str) -> tuple[Any, list[dict]] | None:
        """(tool_description, api entries named like the call) or None (no file, or not the expected shape).

        paper parity: the call's api is standardised once more and compared with ``standardize(name)``,
        so an ``is_``-prefixed api (``is_id``) matches none."""
        data = self.tool_file(loc.category, tool_name)
        if data is None:
            return None
        try:
            api = standardize(loc.api)
            return data["tool_description"], [a for a in data["api_list"] if api == standardize(a["name"])]
        except (KeyError, TypeError, AttributeError):
            return None

    def gpt_doc(self, loc: StbLocation, tool_name: str) -> dict[str, Any]:
        """``api_doc`` of its GPT simulator: ``{'tool_description', 'api_info': [{'name', 'description'}]}``,
        ``{'tool_description': "", 'api_info': ""}`` when the tool file is absent or unreadable."""
        found = self._matching(loc, tool_name)
        try:
            if found is not None:
                info = [{"name": a["name"], "description": a["description"]} for a in found[1]]
                return {"tool_description": found[0], "api_info": info}
        except (KeyError, TypeError):
            pass
        return {"tool_description": "", "api_info": ""}

    def mirror_doc(
        self, loc: StbLocation, tool_name: str, raw_api_name: bool = True
    ) -> dict[str, Any] | None:
        """``api_doc`` of its MirrorAPI servers, from the first matching api entry; None where they fail
        (no tool file, no matching api, a missing field). ``raw_api_name``: ``main_mirrorapi.py`` shows the
        entry's own name, ``main_mirrorapi_cache.py`` the standardised one."""
        found = self._matching(loc, tool_name)
        if found is None or not found[1]:
            return None
        entry = found[1][0]
        try:
            return {
                "api_name": entry["name"] if raw_api_name else standardize(loc.api),
                "api_description": entry["description"],
                "required_parameters": entry["required_parameters"],
                "optional_parameters": entry["optional_parameters"],
                "tool_description": found[0],
                "tool_name": real_tool_name(tool_name),
                "tool_category": loc.category,
            }
        except (KeyError, TypeError):
            return None

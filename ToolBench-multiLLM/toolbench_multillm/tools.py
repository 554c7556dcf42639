"""ToolBench queries and their tools (DESIGN §4.1): function names, OpenAI schemas, α-UMi prompt entries.

A query file is a JSON list of ``{query, query_id, api_list: [{category_name, tool_name, api_name,
api_description, required_parameters, optional_parameters, method, …}], "relevant APIs"}``. Each query
becomes a :class:`Toolset`: one :class:`Api` per ``api_list`` entry (its function name, OpenAI schema
and α-UMi prompt entry) plus the ``Finish`` function. With ``tool_root_dir`` the API docs come from
ToolBench's ``toolenv/tools/<category>/<tool>.json`` instead of the query file.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from glpft.formats import FormatError, Tool, read_json
from glpft.parsing import FINISH_FUNCTION, FINISH_NAME
from glpft.prompts import tool_entry

DESCRIPTION_MAX_LENGTH = 256
FUNCTION_NAME_MAX_LENGTH = 64
#: ToolBench's ``api_name`` type → JSON-schema type; anything else becomes "string".
TYPE_MAP = {"NUMBER": "integer", "STRING": "string", "BOOLEAN": "boolean"}
#: Names that collide with Python keywords or common fields get an ``is_`` prefix (ToolBench).
RESERVED_NAMES = ("from", "class", "return", "false", "true", "id", "and")

# paper parity: the class starts with "^", so every later "^" is literal and survives standardisation.
_NON_NAME = re.compile("[^\\u4e00-\\u9fa5^a-z^A-Z^0-9^_]")
_UNDERSCORES = re.compile(r"_{2,}")


def standardize(name: str) -> str:
    """ToolBench's name standardisation: other characters → "_", runs collapsed, lower-case,
    outer "_" stripped, and a name starting with a digit gets a ``get_`` prefix."""
    name = _UNDERSCORES.sub("_", _NON_NAME.sub("_", name)).lower().strip("_")
    if name and name[0].isdigit():
        name = "get_" + name
    return name


def change_name(name: str) -> str:
    """``is_`` prefix for the reserved names (applied to standardised API and parameter names)."""
    return "is_" + name if name in RESERVED_NAMES else name


def pure_api_name(api_name: str) -> str:
    """The API name as the tool service knows it: ``change_name(standardize(api_name))``."""
    return change_name(standardize(api_name))


def function_name(api_name: str, tool_name: str) -> str:
    """``<api>_for_<tool>``, both standardised, cut to the last 64 characters (OpenAI's limit)."""
    return f"{pure_api_name(api_name)}_for_{standardize(tool_name)}"[-FUNCTION_NAME_MAX_LENGTH:]


def split_function_name(name: str) -> tuple[str, str]:
    """(api, tool) of a function name, split at the first ``_for_`` (answer files carry no category).

    A name without ``_for_`` is returned as (name, "").
    """
    api, sep, tool = name.partition("_for_")
    return (api, tool) if sep else (name, "")


# --- queries --------------------------------------------------------------------------------


@dataclass
class Query:
    """One query of a ToolBench / StableToolBench query file."""

    query_id: str
    query: str
    api_list: list[dict[str, Any]]
    relevant_apis: list[list[str]] = field(default_factory=list)


def _query_from_record(record: Any, where: str) -> Query:
    if not isinstance(record, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key, kind in (("query", str), ("api_list", list)):
        if key not in record:
            raise FormatError(f"{where}: missing field '{key}'")
        if not isinstance(record[key], kind):
            raise FormatError(f"{where}: field '{key}' should be {kind.__name__}")
    for j, api in enumerate(record["api_list"]):
        for key in ("category_name", "tool_name", "api_name"):
            if not isinstance(api, dict) or not isinstance(api.get(key), str):
                raise FormatError(f"{where}: field 'api_list[{j}].{key}' missing or not a string")
    return Query(
        query_id=str(record.get("query_id", "")),
        query=record["query"],
        api_list=record["api_list"],
        relevant_apis=record.get("relevant APIs") or [],
    )


def load_queries(path: str | os.PathLike) -> list[Query]:
    """All queries of a query file; a query without ``query_id`` gets its list position (as ToolBench)."""
    path = os.fspath(path)
    records = read_json(path, expect=list)
    if not records:
        raise FormatError(f"{path}: the query file holds no queries")
    queries = []
    for i, record in enumerate(records):
        q = _query_from_record(record, f"{path}: query[{i}]")
        if q.query_id == "":
            q.query_id = str(i)
        queries.append(q)
    return queries


# --- tool docs from toolenv/tools ------------------------------------------------------------


class ToolNotFound(LookupError):
    """A query names a tool or API that ``tool_root_dir`` does not have (ToolBench skips such queries)."""


@functools.lru_cache(maxsize=256)
def _category_index(category_dir: str) -> dict[str, str]:
    """standardize(tool_name) → JSON file of each tool in one category folder."""
    index: dict[str, str] = {}
    if not os.path.isdir(category_dir):
        return index
    for file in sorted(os.listdir(category_dir)):
        if not file.endswith(".json"):
            continue
        path = os.path.join(category_dir, file)
        index.setdefault(standardize(file[: -len(".json")]), path)
        try:
            name = read_json(path, expect=dict).get("tool_name")
        except FormatError:
            continue
        if isinstance(name, str):
            index.setdefault(standardize(name), path)
    return index


@functools.lru_cache(maxsize=1024)
def _load_tool_file(path: str) -> dict[str, Any]:
    try:
        data = read_json(path, expect=dict)
    except FormatError as e:
        raise ToolNotFound(str(e)) from None  # the query cannot be set up: skipped, with this reason
    if not isinstance(data.get("api_list"), list):
        raise ToolNotFound(f"{path}: missing field 'api_list'")
    return data


def resolve_api(entry: dict[str, Any], tool_root_dir: str) -> tuple[dict[str, Any], str]:
    """(full API doc, standard tool name) of an ``api_list`` entry, read from ``<root>/<category>/<tool>.json``.

    The standard tool name is the tool file's name, as ToolBench's white list uses it.
    """
    category = entry["category_name"]
    if os.sep in category or category.startswith("."):
        raise ToolNotFound(f"invalid category {category!r}")
    path = _category_index(os.path.join(tool_root_dir, category)).get(standardize(entry["tool_name"]))
    if path is None:
        raise ToolNotFound(
            f"tool {entry['tool_name']!r} not found under {os.path.join(tool_root_dir, category)}"
        )
    tool = _load_tool_file(path)
    wanted = pure_api_name(entry["api_name"])
    for api in tool["api_list"]:
        if isinstance(api, dict) and pure_api_name(str(api.get("name", ""))) == wanted:
            doc = {
                "category_name": category,
                "tool_name": tool.get("tool_name", entry["tool_name"]),
                "api_name": api["name"],
                "api_description": api.get("description") or "",
                "required_parameters": api.get("required_parameters") or [],
                "optional_parameters": api.get("optional_parameters") or [],
                "method": api.get("method", ""),
            }
            return doc, os.path.basename(path)[: -len(".json")]
    raise ToolNotFound(f"API {entry['api_name']!r} not found in {path}")


# --- functions and prompt entries ------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    """One callable API: ``name`` is what the model writes; the rest is what the tool service needs."""

    name: str
    category: str
    tool_name: str  # standard tool name (payload ``tool_name``)
    api_name: str  # pure API name (payload ``api_name``)
    schema: dict[str, Any]  # OpenAI function schema
    prompt_entry: Tool  # α-UMi prompt tool entry
    doc: dict[str, Any]  # the api_list entry it was built from


def _param_type(param: dict[str, Any]) -> str:
    return TYPE_MAP.get(str(param.get("type", "")), "string")


def build_api(doc: dict[str, Any], standard_tool_name: str | None = None) -> Api:
    """Function name, OpenAI schema and α-UMi prompt entry of one API doc (an ``api_list`` entry)."""
    tool = standard_tool_name or standardize(doc["tool_name"])
    api = pure_api_name(doc["api_name"])
    name = f"{api}_for_{tool}"[-FUNCTION_NAME_MAX_LENGTH:]
    schema: dict[str, Any] = {
        "name": name,
        "description": f'This is the subfunction for tool "{tool}", you can use this tool.',
        "parameters": {"type": "object", "properties": {}, "required": [], "optional": []},
    }
    entry: Tool = {"Name": name, "function": "", "input": {}}
    description = str(doc.get("api_description") or "").strip()
    if description:
        # paper parity: the raw API name inside the description is replaced by the function name.
        short = description.replace(doc["api_name"], name)[:DESCRIPTION_MAX_LENGTH]
        schema["description"] += f'The description of this function is: "{short}"'
        entry["function"] = short
    required = doc.get("required_parameters") or []
    optional = doc.get("optional_parameters") or []
    # paper parity: parameters are documented only when the API has at least one required parameter.
    if required:
        for param in required + optional:
            text = str(param.get("description") or "")
            kind = _param_type(param)
            entry["input"][param["name"]] = (
                kind + ", " + text[-DESCRIPTION_MAX_LENGTH:] if text.strip() else kind
            )
        props = schema["parameters"]["properties"]
        for group, params in (("required", required), ("optional", optional)):
            for param in params:
                pname = change_name(standardize(param["name"]))
                prop = {
                    "type": _param_type(param),
                    "description": str(param.get("description") or "")[:DESCRIPTION_MAX_LENGTH],
                }
                if len(str(param.get("default", ""))) != 0:
                    prop["example_value"] = param["default"]
                props[pname] = prop
                schema["parameters"][group].append(pname)
    return Api(name, doc["category_name"], tool, api, schema, entry, doc)


@dataclass
class Toolset:
    """The tools of one query: ``functions`` (OpenAI schemas + Finish) and ``prompt_tools`` (α-UMi entries)."""

    apis: list[Api]
    functions: list[dict[str, Any]]
    prompt_tools: list[Tool]

    @functools.cached_property
    def by_name(self) -> dict[str, Api]:
        """Exact function name → API (first one wins on a duplicate name, as the original's scan)."""
        table: dict[str, Api] = {}
        for api in self.apis:
            table.setdefault(api.name, api)
        return table


def build_toolset(
    query: Query | dict[str, Any], tool_root_dir: str | None = None, docs: str = "paper"
) -> Toolset:
    """The toolset of a query.

    ``docs="paper"`` (default, paper parity) puts the short API description and raw parameter names into
    the prompt entries, as the original real-time code; ``docs="training"`` builds them from the OpenAI
    schema exactly as preprocessing builds training data (``glpft.prompts.tool_entry``), so the agent sees
    the same tool text it was trained on. Raises :class:`ToolNotFound` when ``tool_root_dir`` lacks a tool.
    """
    if docs not in ("paper", "training"):
        raise ValueError(f"docs must be 'paper' or 'training', not {docs!r}")
    api_list = query.api_list if isinstance(query, Query) else query["api_list"]
    apis = []
    for entry in api_list:
        if tool_root_dir:
            doc, standard_tool = resolve_api(entry, tool_root_dir)
            apis.append(build_api(doc, standard_tool))
        else:
            apis.append(build_api(entry))
    if docs == "training":
        apis = [
            Api(a.name, a.category, a.tool_name, a.api_name, a.schema, tool_entry(a.schema, a.name), a.doc)
            for a in apis
        ]
    functions = [a.schema for a in apis] + [FINISH_FUNCTION]
    return Toolset(apis, functions, [a.prompt_entry for a in apis])


def toolset_from_functions(functions: list[dict[str, Any]], category: str = "") -> Toolset:
    """A toolset from the OpenAI schemas of a ToolBench answer file (replaying a trajectory).

    Answer files carry no category or raw names: each name is split at its first ``_for_``; the prompt
    entries are built as preprocessing builds them (``glpft.prompts.tool_entry``).
    """

    apis = []
    for fn in functions:
        if not isinstance(fn, dict) or fn.get("name") == FINISH_NAME or not isinstance(fn.get("name"), str):
            continue
        api, tool = split_function_name(fn["name"])
        doc = {"category_name": category, "tool_name": tool, "api_name": api}
        apis.append(Api(fn["name"], category, tool, api, fn, tool_entry(fn, fn["name"]), doc))
    return Toolset(apis, [a.schema for a in apis] + [FINISH_FUNCTION], [a.prompt_entry for a in apis])

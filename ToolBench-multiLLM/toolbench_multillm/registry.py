"""In-process Python tools of the tool server, keyed by standardised (tool, API) names.

    registry = ToolRegistry()
    registry.register("weather", "get_weather", fn)  # or @registry.tool("weather", "get_weather")
    serve(ServerConfig(cache=ResponseCache("tool_cache.sqlite"), registry=registry))

A request can only select a function the operator registered; :meth:`ToolRegistry.call` turns the
tool input into keyword arguments and the function's result (or failure) into ``(error, response)``; a
result that is a JSON object or list stays one (the server answers it as such, DESIGN §6).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolbench_multillm.cache_keys import cache_key
from toolbench_multillm.tools import standardize


@dataclass
class LocalTool:
    """A registered function and its API doc (the doc is informational; the server does not read it)."""

    fn: Callable[..., Any]
    doc: dict[str, Any] = field(default_factory=dict)


class ToolRegistry:
    """Python functions served as tools, keyed by standardised (tool, api).

    Registered by the operator (``registry.register("weather", "get_weather", fn)`` or the
    ``@registry.tool(...)`` decorator); a request can only pick one of them. The function is called
    with the tool input's keys as keyword arguments; a ``{"error": str, "response": …}`` dict is passed
    through as the answer; an object or list result is the response as it is, another value its JSON text.
    """

    def __init__(self) -> None:
        self._tools: dict[tuple[str, str], LocalTool] = {}

    def register(
        self, tool_name: str, api_name: str, fn: Callable[..., Any], doc: dict[str, Any] | None = None
    ) -> None:
        self._tools[cache_key(tool_name, api_name)] = LocalTool(fn, doc or {})

    def tool(self, tool_name: str, api_name: str, doc: dict[str, Any] | None = None) -> Callable:
        """Decorator form of :meth:`register`; returns the function unchanged."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(tool_name, api_name, fn, doc)
            return fn

        return decorator

    def get(self, tool_name: str, api_name: str) -> LocalTool | None:
        return self._tools.get(cache_key(tool_name, api_name))

    def knows_tool(self, tool_name: str) -> bool:
        """Whether any API of this tool is registered (an unknown API of a known tool is not a 404)."""
        tool = standardize(tool_name)
        return any(t == tool for t, _ in self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    @staticmethod
    def call(local: LocalTool, tool_input: Any) -> tuple[str, Any]:
        """(error, response) of one call; bad input, the tool's own exceptions and a result with no JSON
        text become the error text (never raises)."""
        args = tool_input
        if isinstance(tool_input, str):
            try:
                args = json.loads(tool_input or "{}", strict=False)
            except (ValueError, RecursionError):  # bad syntax, nested too deeply, huge integers
                return "invalid tool input: not JSON", ""
        if not isinstance(args, dict):
            return "invalid tool input: expected a JSON object", ""
        try:
            result = local.fn(**args)
        except TypeError as e:
            return f"invalid tool input: {e}", ""
        except Exception as e:  # the tool's own failure is the tool's answer
            return f"{type(e).__name__}: {e}", ""
        if (
            isinstance(result, dict)
            and set(result) == {"error", "response"}
            and isinstance(result["error"], str)
        ):
            error, result = result["error"], result["response"]  # a tool answering in ToolBench's own shape
        else:
            error = ""
        if isinstance(result, str):
            return error, result
        try:
            text = json.dumps(result, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError) as e:
            return f"tool result is not JSON-serialisable ({type(e).__name__})", ""
        return error, result if isinstance(result, (dict, list)) else text
        try:
            json.dumps(result, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError) as e:
            return f"tool result is not JSON-serialisable ({type(e).__name__})", ""
        return error, result

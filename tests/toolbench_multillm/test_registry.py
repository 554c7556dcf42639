"""In-process Python tools: ToolRegistry's call wrapper directly and through the tool server."""

from __future__ import annotations

from fastapi.testclient import TestClient

from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.registry import ToolRegistry
from toolbench_multillm.server import ServerConfig, create_app


def test_call_turns_tool_input_into_keyword_arguments_and_keeps_object_results_as_values():
    registry = ToolRegistry()
    registry.register("My Tool", "Echo", lambda **kw: kw)
    registry.register("My Tool", "Text", lambda: "plain text")
    echo, text = registry.get("my_tool", "echo"), registry.get("My Tool", "Text")
    assert echo is not None and text is not None and len(registry) == 2
    assert ToolRegistry.call(echo, '{"q": "é"}') == ("", {"q": "é"})
    assert ToolRegistry.call(echo, {"n": 1}) == ("", {"n": 1})
    assert ToolRegistry.call(echo, "") == ("", {})
    assert ToolRegistry.call(text, "{}") == ("", "plain text")
    assert ToolRegistry.call(echo, "{oops") == ("invalid tool input: not JSON", "")
    assert ToolRegistry.call(echo, "[1]") == ("invalid tool input: expected a JSON object", "")
    assert registry.knows_tool("My Tool") and not registry.knows_tool("other")
    assert registry.get("my_tool", "missing") is None


def test_registered_python_tools_are_served_and_their_failures_are_answers(seeded_cache_file):
    registry = ToolRegistry()

    @registry.tool("Weather", "Get weather")
    def get_weather(city: str) -> dict:
        if city == "Atlantis":
            raise KeyError(city)
        return {"city": city, "temp": 21}

    with TestClient(create_app(ServerConfig(cache=ResponseCache(seeded_cache_file), registry=registry))) as c:
        ok = c.post(
            "/virtual",
            json={"tool_name": "weather", "api_name": "get_weather", "tool_input": '{"city": "Paris"}'},
        )
        assert ok.json() == {"error": "", "response": {"city": "Paris", "temp": 21}, "source": "registered"}
        assert (
            "KeyError"
            in c.post(
                "/virtual",
                json={"tool_name": "weather", "api_name": "get_weather", "tool_input": {"city": "Atlantis"}},
            ).json()["error"]
        )
        assert (
            "invalid tool input"
            in c.post(
                "/virtual",
                json={"tool_name": "weather", "api_name": "get_weather", "tool_input": '{"town": 1}'},
            ).json()["error"]
        )
        assert (
            c.post(
                "/virtual", json={"tool_name": "weather", "api_name": "other", "tool_input": "{}"}
            ).status_code
            == 200
        )
        assert (
            c.post(
                "/virtual", json={"tool_name": "transitaires", "api_name": "transitaires", "tool_input": "{}"}
            )
            .json()["response"]
            .startswith("[{")
        )
        assert c.get("/stats").json()["by_source"]["registered"] == 3


def test_registered_tool_answering_in_toolbench_shape_keeps_its_error_field(seeded_cache_file):
    registry = ToolRegistry()
    registry.register(
        "Shop", "get item", lambda item_id: {"error": "unknown id", "response": "{'message': 'unknown id'}"}
    )
    with TestClient(create_app(ServerConfig(cache=ResponseCache(seeded_cache_file), registry=registry))) as c:
        r = c.post(
            "/virtual", json={"tool_name": "shop", "api_name": "get_item", "tool_input": {"item_id": "x"}}
        )
        assert r.json() == {
            "error": "unknown id",
            "response": "{'message': 'unknown id'}",
            "source": "registered",
        }


def test_hostile_inputs_and_results_become_error_text_never_exceptions():
    registry = ToolRegistry()
    registry.register("t", "echo", lambda **kw: kw)
    registry.register("t", "set", lambda: {1, 2})
    registry.register("t", "nan", lambda: float("nan"))
    echo, bad, nan = registry.get("t", "echo"), registry.get("t", "set"), registry.get("t", "nan")
    assert ToolRegistry.call(echo, "[" * 20000) == ("invalid tool input: not JSON", "")
    assert ToolRegistry.call(echo, '{"n": 1' + "0" * 5000 + "}") == ("invalid tool input: not JSON", "")
    assert ToolRegistry.call(bad, "{}") == ("tool result is not JSON-serialisable (TypeError)", "")
    assert ToolRegistry.call(nan, "{}") == ("", "NaN")

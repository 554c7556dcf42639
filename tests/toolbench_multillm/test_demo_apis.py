"""The demo's APIs: every API on good and bad input, registry-only dispatch, ToolBench docs, and the
served tools giving the agent the observations the expert saw."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from toolbench_multillm import demo_apis as A
from toolbench_multillm import demo_data as D
from toolbench_multillm.tools import (
    build_toolset,
    function_name,
    load_queries,
    split_function_name,
    standardize,
)

N_TRAIN, N_TEST = 150, 25

# api: (input, expected result) — expected values computed by hand.
GOOD = {
    "convert_length": ({"value": 5, "from_unit": "km", "to_unit": "mi"}, {"value": 3.11, "unit": "mi"}),
    "convert_weight": ({"value": 2, "from_unit": "kg", "to_unit": "lb"}, {"value": 4.41, "unit": "lb"}),
    "convert_temperature": ({"value": 100, "from_unit": "C", "to_unit": "F"}, {"value": 212, "unit": "F"}),
    "list_currencies": ({}, {"currencies": ["USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "INR"]}),
    "exchange_rate": (
        {"from_currency": "USD", "to_currency": "EUR"},
        {"from": "USD", "to": "EUR", "rate": 0.9},
    ),
    "convert_currency": (
        {"amount": 10, "from_currency": "EUR", "to_currency": "USD"},
        {"amount": 11.11, "currency": "USD"},
    ),
    "city_info": (
        {"city": "Paris"},
        {"city": "Paris", "country": "France", "population": 2102650, "timezone": "UTC+1"},
    ),
    "cities_by_country": ({"country": "Japan"}, {"country": "Japan", "cities": ["Tokyo", "Osaka"]}),
    "country_capital": ({"country": "Peru"}, {"country": "Peru", "capital": "Lima"}),
    # Paris–Rome great-circle distance is about 1106 km.
    "distance_between": (
        {"city_a": "Paris", "city_b": "Rome"},
        {"city_a": "Paris", "city_b": "Rome", "distance_km": 1106},
    ),
    "current_weather": (
        {"city": "Berlin"},
        {"city": "Berlin", "condition": "rainy", "temperature_c": 14, "humidity": 78},
    ),
    "forecast": (
        {"city": "Paris", "days": 2},
        {
            "city": "Paris",
            "days": [
                {"day": 1, "condition": "rainy", "high_c": 19, "low_c": 12},
                {"day": 2, "condition": "windy", "high_c": 20, "low_c": 13},
            ],
        },
    ),
    "air_quality": ({"city": "Cairo"}, {"city": "Cairo", "aqi": 95, "level": "moderate"}),
    "add_days": ({"date": "2024-02-27", "days": 3}, {"date": "2024-03-01"}),  # 2024 is a leap year
    "days_between": ({"start_date": "2024-01-01", "end_date": "2024-03-01"}, {"days": 60}),
    "weekday": ({"date": "2024-01-01"}, {"date": "2024-01-01", "weekday": "Monday"}),
    "search_products": (
        {"keyword": "kettle"},
        {"products": [{"product_code": "P101", "name": "Blue Kettle", "price_usd": 35}]},
    ),
    "product_details": (
        {"product_code": "P105"},
        {"product_code": "P105", "name": "Office Chair", "brand": "Sitwell", "price_usd": 180, "stock": 4},
    ),
    "order_total": (
        {"product_code": "P103", "quantity": 3},
        {"product_code": "P103", "quantity": 3, "total_usd": 45},
    ),
    "define_word": ({"word": "cold"}, {"word": "cold", "definition": "of low temperature"}),
    "synonyms": ({"word": "fast"}, {"word": "fast", "synonyms": ["quick", "rapid"]}),
    "translate_word": (
        {"word": "book", "language": "de"},
        {"word": "book", "language": "de", "translation": "Buch"},
    ),
    "calculate": ({"a": 10, "b": 4, "operation": "divide"}, {"result": 2.5}),
    "percentage": ({"value": 200, "percent": 15}, {"result": 30}),
    "prime_check": ({"number": 17}, {"number": 17, "is_prime": True}),
}

# api: (input, expected error message)
BAD = {
    "convert_length": (
        {"value": 5, "from_unit": "meters", "to_unit": "km"},
        "Unknown unit: meters. Valid units: m, km, cm, mi, ft, in.",
    ),
    "convert_weight": (
        {"value": 5, "from_unit": "kg", "to_unit": "stone"},
        "Unknown unit: stone. Valid units: g, kg, lb, oz.",
    ),
    "convert_temperature": (
        {"value": 5, "from_unit": "Celsius", "to_unit": "F"},
        "Unknown unit: Celsius. Valid units: C, F, K.",
    ),
    "list_currencies": ("not json", "Invalid input: not a JSON object."),
    "exchange_rate": (
        {"from_currency": "USD", "to_currency": "dollars"},
        "Unknown currency: dollars. Valid currencies: USD, EUR, GBP, JPY, CAD, AUD, CHF, INR.",
    ),
    "convert_currency": (
        {"amount": "ten", "from_currency": "USD", "to_currency": "EUR"},
        "Invalid value for amount: ten is not a number.",
    ),
    "city_info": ({"city": "Atlantis"}, "Unknown city: Atlantis."),
    "cities_by_country": ({"country": "Wakanda"}, "Unknown country: Wakanda."),
    "country_capital": ({"country": "Genovia"}, "Unknown country: Genovia."),
    "distance_between": ({"city_a": "Paris", "city_b": "Gotham"}, "Unknown city: Gotham."),
    "current_weather": ({"city": "Narnia"}, "Unknown city: Narnia."),
    "forecast": ({"city": "Paris", "days": 5}, "Invalid days: 5. Use 1, 2 or 3."),
    "air_quality": ({"city": "Utopia"}, "Unknown city: Utopia."),
    "add_days": ({"date": "02/27/2024", "days": 3}, "Invalid date: 02/27/2024. Use YYYY-MM-DD."),
    "days_between": (
        {"start_date": "2024-02-30", "end_date": "2024-03-01"},
        "Invalid date: 2024-02-30. Use YYYY-MM-DD.",
    ),
    "weekday": ({"date": "yesterday"}, "Invalid date: yesterday. Use YYYY-MM-DD."),
    "search_products": ({"keyword": ""}, "Missing required parameter: keyword."),
    "product_details": ({"product_code": "P999"}, "Unknown product code: P999."),
    "order_total": (
        {"product_code": "P101", "quantity": 0},
        "Invalid quantity: 0. Use a whole number of at least 1.",
    ),
    "define_word": ({"word": "blorft"}, "Unknown word: blorft."),
    "synonyms": ({"word": "snazzle"}, "Unknown word: snazzle."),
    "translate_word": (
        {"word": "book", "language": "Spanish"},
        "Unknown language: Spanish. Valid languages: es, fr, de.",
    ),
    "calculate": ({"a": 1, "b": 0, "operation": "divide"}, "Division by zero."),
    "percentage": ({"value": True, "percent": 5}, "Invalid value for value: True is not a number."),
    "prime_check": ({"number": 2.5}, "Invalid number: 2.5. Use a whole number of at least 0."),
}


def _call(api: str, tool_input) -> dict:
    return A.call_api(A.API_BY_NAME[api].tool, api, tool_input)


# --- the APIs --------------------------------------------------------------------------------


def test_world_has_eight_categories_and_25_apis_with_unique_function_names():
    assert len(A.REGISTRY) == 25
    assert len({a.category for a in A.API_TABLE}) == 8
    assert set(GOOD) == set(BAD) == set(A.API_BY_NAME)
    names = [a.function_name for a in A.API_TABLE]
    assert len(set(names)) == 25
    for a in A.API_TABLE:
        assert a.function_name == function_name(a.api, a.tool)
        assert split_function_name(a.function_name) == (a.api, standardize(a.tool))


@pytest.mark.parametrize("api", sorted(GOOD))
def test_every_api_answers_good_input(api):
    tool_input, expected = GOOD[api]
    out = _call(api, tool_input)
    assert out["error"] == ""
    assert ast.literal_eval(out["response"]) == expected
    # the payload's JSON-string input gives the same answer
    assert _call(api, json.dumps(tool_input)) == out


@pytest.mark.parametrize("api", sorted(BAD))
def test_every_api_reports_bad_input_as_an_error_response(api):
    tool_input, message = BAD[api]
    out = _call(api, tool_input)
    assert out == {"error": message, "response": repr({"message": message})}


@pytest.mark.parametrize("api", sorted(a.api for a in A.API_TABLE if a.required))
def test_missing_required_parameter_is_named(api):
    tool_input = dict(GOOD[api][0])
    first = A.API_BY_NAME[api].required[0][0]
    del tool_input[first]
    assert _call(api, tool_input)["error"] == f"Missing required parameter: {first}."


def test_inputs_are_coerced_like_a_web_api():
    # numeric strings are numbers, unknown arguments are ignored, optional ones take their default
    assert _call("calculate", {"a": "6", "b": 7, "operation": "multiply"})["response"] == "{'result': 42}"
    assert _call("city_info", {"city": "Lima", "lang": "en"})["error"] == ""
    days = ast.literal_eval(_call("forecast", {"city": "Lima"})["response"])["days"]
    assert len(days) == 3
    assert _call("list_currencies", "")["error"] == ""
    assert _call("list_currencies", None)["error"] == ""
    assert _call("weekday", ["2024-01-01"])["error"] == "Invalid input: not a JSON object."
    assert _call("prime_check", {"number": 1})["response"] == "{'number': 1, 'is_prime': False}"
    assert _call("search_products", {"keyword": "unicorn"})["response"] == "{'products': []}"


def test_raw_and_standardised_names_reach_the_same_api():
    want = _call("current_weather", {"city": "Rome"})
    assert A.call_api("Weather Table", "current_weather", {"city": "Rome"}) == want
    assert A.call_api("weather_table", "current_weather", {"city": "Rome"}, category="Weather") == want


@pytest.mark.parametrize(
    "tool,api",
    [
        ("weather_table", "__import__"),
        ("weather_table", "eval"),
        ("demo_apis", "call_api"),
        ("weather_table", "_lookup"),
        ("os", "system"),
        ("../../etc", "passwd"),
        ("weather_table", "forecast_for_weather_table"),
        ("math_helper", "current_weather"),
        ("", ""),
    ],
)
def test_call_api_dispatches_only_through_the_registry(tool, api):
    out = A.call_api(tool, api, {"city": "Paris"})
    assert out["error"].startswith("No such API")


def test_a_module_function_outside_the_registry_is_unreachable(monkeypatch):
    monkeypatch.setattr(A, "evil", lambda **_: pytest.fail("called by name"), raising=False)
    assert A.call_api("weather_table", "evil", {})["error"].startswith("No such API")


def test_api_docs_are_toolbench_entries_that_build_into_prompt_tools():
    docs = A.api_docs()
    assert len(docs) == 25
    for doc, api in zip(docs, A.API_TABLE):
        assert set(doc) == {
            "category_name", "tool_name", "api_name", "api_description",
            "required_parameters", "optional_parameters", "method",
        }  # fmt: skip
        for p in doc["required_parameters"] + doc["optional_parameters"]:
            assert p["type"] in ("STRING", "NUMBER", "BOOLEAN") and p["description"]
        # the description must not contain the API name (ToolBench replaces it by the function name)
        assert api.api not in doc["api_description"]
        # parameters are documented only when there is a required one (paper parity)
        assert api.required or not api.optional
    toolset = build_toolset({"api_list": docs}, docs="training")
    assert [t["Name"] for t in toolset.prompt_tools] == [a.function_name for a in A.API_TABLE]
    assert toolset.prompt_tools[0]["input"]["from_unit"] == "string, Unit to convert from"


# --- served from the tool server -------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    D.generate_demo_data(out, seed=0, n_train=N_TRAIN, n_test=N_TEST)
    return out


def test_served_tools_give_the_agent_the_observations_it_was_trained_on(demo, tmp_path):
    from fastapi.testclient import TestClient

    from toolbench_multillm.cache import ResponseCache
    from toolbench_multillm.env import ToolClient, ToolEnv
    from toolbench_multillm.registry import ToolRegistry
    from toolbench_multillm.server import ServerConfig, create_app

    registry = ToolRegistry()
    assert A.register_demo_tools(registry) == 25
    config = ServerConfig(cache=ResponseCache(tmp_path / "cache.sqlite"), registry=registry)
    query = load_queries(demo / "queries" / "test.json")[0]
    gen = json.loads((demo / "test" / "answer" / "G1_answer" / f"{query.query_id}_demo.json").read_text())
    with TestClient(create_app(config)) as http:
        env = ToolEnv(build_toolset(query), ToolClient("http://testserver/rapidapi", http_client=http))
        chains = gen["answer_generation"]["train_messages"]
        steps = [(a, m) for chain in chains for a, m in zip(chain, chain[1:]) if m["role"] == "function"]
        assert steps
        for assistant, function in steps:
            call = assistant["function_call"]
            observation, status = env.step(call["name"], call["arguments"])
            # paper parity: the α-UMi environment shows the JSON-encoded response text
            assert observation == json.dumps(json.loads(function["content"])["response"])
            assert status == 0
        # an error reaches the agent as its message text (the server keeps only the response)
        api = next(a for a in A.API_TABLE if a.function_name in env.toolset.by_name and a.required)
        observation, status = env.step(api.function_name, "{}")
        message = f"Missing required parameter: {api.required[0][0]}."
        assert json.loads(observation) == repr({"message": message})

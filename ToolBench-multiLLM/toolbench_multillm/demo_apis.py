"""The demo's 8 tools (25 APIs) as ToolBench sees them: specs, ``api_list`` docs and dispatch.

Everything speaks ToolBench's formats, so the demo runs through the same code as the full scale:
``call_api`` answers ToolBench payloads with ``{"error", "response"}`` (DESIGN §4.2) and dispatches only
through the static ``REGISTRY``; ``api_docs`` gives StableToolBench ``api_list`` entries (§4.1);
``register_demo_tools(server_registry)`` serves the APIs from the tool server, in-process.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from toolbench_multillm.demo_handlers import (
    ApiError,
    add_days,
    air_quality,
    calculate,
    cities_by_country,
    city_info,
    convert_currency,
    convert_length,
    convert_temperature,
    convert_weight,
    country_capital,
    current_weather,
    days_between,
    define_word,
    distance_between,
    exchange_rate,
    forecast,
    list_currencies,
    order_total,
    percentage,
    prime_check,
    product_details,
    search_products,
    synonyms,
    translate_word,
    weekday,
)
from toolbench_multillm.tools import build_api, pure_api_name, standardize

# --- the registry: the only way call_api reaches a function ---------------------------------


@dataclass(frozen=True)
class DemoApi:
    """One API: its ToolBench doc fields, its function and the expert's purpose template."""

    category: str
    tool: str
    api: str
    description: str
    required: tuple[tuple[str, str, str, Any], ...]  # (name, type, description, example)
    fn: Callable[..., Any]
    purpose: str  # "I will call <function> to <purpose>." formatted with the arguments
    optional: tuple[tuple[str, str, str, Any], ...] = ()

    @property
    def params(self) -> tuple[tuple[str, str, str, Any], ...]:
        return self.required + self.optional

    @functools.cached_property
    def function_name(self) -> str:
        return build_api(self.doc()).name

    def doc(self) -> dict[str, Any]:
        """The StableToolBench ``api_list`` entry of this API."""

        def params(group: tuple[tuple[str, str, str, Any], ...]) -> list[dict[str, Any]]:
            return [{"name": n, "type": t, "description": d, "default": ex} for n, t, d, ex in group]

        return {
            "category_name": self.category,
            "tool_name": self.tool,
            "api_name": self.api,
            "api_description": self.description,
            "required_parameters": params(self.required),
            "optional_parameters": params(self.optional),
            "method": "GET",
        }


TOOLS: dict[str, tuple[str, str]] = {  # tool: (category, description)
    "Unit Converter": ("Tools", "Convert lengths, weights and temperatures between units"),
    "Fixed Rate Currency": ("Finance", "Exchange rates and conversions at fixed rates"),
    "City Facts": ("Travel", "Facts, capitals and distances for a set of world cities"),
    "Weather Table": ("Weather", "Current weather, forecasts and air quality for known cities"),
    "Date Calculator": ("Data", "Calendar arithmetic on dates written as YYYY-MM-DD"),
    "Mini Shop": ("eCommerce", "Search a small product catalogue, see details and price orders"),
    "Pocket Dictionary": ("Education", "English definitions, synonyms and translations"),
    "Math Helper": ("Science", "Basic arithmetic, percentages and prime checks"),
}


def _p(name: str, kind: str, text: str, example: Any) -> tuple[str, str, str, Any]:
    return (name, kind, text, example)


def _units(src: str, dst: str) -> tuple[tuple[str, str, str, Any], ...]:
    return (
        _p("value", "NUMBER", "The amount to convert", 5),
        _p("from_unit", "STRING", "Unit to convert from", src),
        _p("to_unit", "STRING", "Unit to convert to", dst),
    )


_CUR = "Currency code, e.g. USD"
#: Every API of the demo world, in the order ``api_docs`` lists them.
API_TABLE: tuple[DemoApi, ...] = tuple(
    DemoApi(TOOLS[tool][0], tool, api, desc, req, fn, purpose, opt)
    for tool, api, desc, req, fn, purpose, opt in (
        ("Unit Converter", "convert_length", "Convert a length. Units: m, km, cm, mi, ft, in",
         _units("km", "mi"), convert_length, "convert {value} {from_unit} to {to_unit}", ()),
        ("Unit Converter", "convert_weight", "Convert a weight. Units: g, kg, lb, oz",
         _units("kg", "lb"), convert_weight, "convert {value} {from_unit} to {to_unit}", ()),
        ("Unit Converter", "convert_temperature", "Convert a temperature. Units: C, F, K",
         _units("C", "F"), convert_temperature, "convert {value} {from_unit} to {to_unit}", ()),
        ("Fixed Rate Currency", "list_currencies", "List the supported currency codes",
         (), list_currencies, "list the currencies", ()),
        ("Fixed Rate Currency", "exchange_rate", "Get the exchange rate between two currencies",
         (_p("from_currency", "STRING", _CUR, "USD"), _p("to_currency", "STRING", _CUR, "EUR")),
         exchange_rate, "get the rate from {from_currency} to {to_currency}", ()),
        ("Fixed Rate Currency", "convert_currency", "Convert an amount of money to another currency",
         (_p("amount", "NUMBER", "The amount of money", 10), _p("from_currency", "STRING", _CUR, "USD"),
          _p("to_currency", "STRING", _CUR, "EUR")),
         convert_currency, "convert {amount} {from_currency} to {to_currency}", ()),
        ("City Facts", "city_info", "Get the country, population and timezone of a city",
         (_p("city", "STRING", "City name", "Paris"),), city_info, "get facts about {city}", ()),
        ("City Facts", "cities_by_country", "List the known cities of a country",
         (_p("country", "STRING", "Country name", "France"),), cities_by_country, "list the cities in {country}", ()),
        ("City Facts", "country_capital", "Get the capital city of a country",
         (_p("country", "STRING", "Country name", "France"),), country_capital, "get the capital of {country}", ()),
        ("City Facts", "distance_between", "Get the distance in km between two cities",
         (_p("city_a", "STRING", "First city", "Paris"), _p("city_b", "STRING", "Second city", "Rome")),
         distance_between, "get the distance from {city_a} to {city_b}", ()),
        ("Weather Table", "current_weather", "Get the current weather of a city",
         (_p("city", "STRING", "City name", "Paris"),), current_weather, "get the weather in {city}", ()),
        ("Weather Table", "forecast", "Get the weather of a city for the next 1 to 3 days",
         (_p("city", "STRING", "City name", "Paris"),), forecast, "get the {days} day forecast for {city}",
         (_p("days", "NUMBER", "Number of days, 1 to 3", 3),)),
        ("Weather Table", "air_quality", "Get the air quality index of a city",
         (_p("city", "STRING", "City name", "Paris"),), air_quality, "get the air quality in {city}", ()),
        ("Date Calculator", "add_days", "Add a number of days to a date",
         (_p("date", "STRING", "Date as YYYY-MM-DD", "2024-01-31"), _p("days", "NUMBER", "Days to add", 10)),
         add_days, "add {days} days to {date}", ()),
        ("Date Calculator", "days_between", "Count the days from one date to another",
         (_p("start_date", "STRING", "Date as YYYY-MM-DD", "2024-01-01"),
          _p("end_date", "STRING", "Date as YYYY-MM-DD", "2024-03-01")),
         days_between, "count the days from {start_date} to {end_date}", ()),
        ("Date Calculator", "weekday", "Get the day of the week of a date",
         (_p("date", "STRING", "Date as YYYY-MM-DD", "2024-01-31"),), weekday, "get the weekday of {date}", ()),
        ("Mini Shop", "search_products", "Search products by name",
         (_p("keyword", "STRING", "Words of the product name", "kettle"),),
         search_products, "find the product {keyword}", ()),
        ("Mini Shop", "product_details", "Get brand, price and stock of a product",
         (_p("product_code", "STRING", "Product code, e.g. P101", "P101"),),
         product_details, "get the details of {product_code}", ()),
        ("Mini Shop", "order_total", "Get the total price in USD of an order",
         (_p("product_code", "STRING", "Product code, e.g. P101", "P101"), _p("quantity", "NUMBER", "Number of units", 2)),
         order_total, "get the total for {quantity} of {product_code}", ()),
        ("Pocket Dictionary", "define_word", "Get the definition of an English word",
         (_p("word", "STRING", "The word", "happy"),), define_word, "get the meaning of {word}", ()),
        ("Pocket Dictionary", "synonyms", "Get words with the same meaning as an English word",
         (_p("word", "STRING", "The word", "happy"),), synonyms, "get synonyms of {word}", ()),
        ("Pocket Dictionary", "translate_word", "Translate an English word. Languages: es, fr, de",
         (_p("word", "STRING", "The word", "happy"), _p("language", "STRING", "Language code: es, fr or de", "es")),
         translate_word, "translate {word} to {language}", ()),
        ("Math Helper", "calculate", "Add, subtract, multiply or divide two numbers",
         (_p("a", "NUMBER", "First number", 6), _p("b", "NUMBER", "Second number", 7),
          _p("operation", "STRING", "add, subtract, multiply or divide", "multiply")),
         calculate, "{operation} {a} and {b}", ()),
        ("Math Helper", "percentage", "Get a given percent of a value",
         (_p("value", "NUMBER", "The value", 200), _p("percent", "NUMBER", "The percent", 15)),
         percentage, "get {percent} percent of {value}", ()),
        ("Math Helper", "prime_check", "Check whether a whole number is prime",
         (_p("number", "NUMBER", "The number", 17),), prime_check, "check if {number} is prime", ()),
    )
)  # fmt: skip

#: (standardised tool name, standardised API name) → API. call_api dispatches only through this table.
REGISTRY: dict[tuple[str, str], DemoApi] = {(standardize(a.tool), pure_api_name(a.api)): a for a in API_TABLE}
API_BY_NAME: dict[str, DemoApi] = {a.api: a for a in API_TABLE}


def api_docs(tools: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``api_list`` entries of every API (or of the named tools), in registry order."""
    return [a.doc() for a in API_TABLE if tools is None or a.tool in tools]


def _error(message: str) -> dict[str, str]:
    return {"error": message, "response": repr({"message": message})}


def call_api(
    tool_name: str, api_name: str, tool_input: dict[str, Any] | str | None, category: str | None = None
) -> dict[str, str]:
    """Answer one ToolBench call: ``{"error": "", "response": <repr of the result>}`` or an error.

    ``tool_name``/``api_name`` may be raw or standardised; ``tool_input`` a dict or a JSON string (as in
    the payload). ``category`` is accepted and ignored. Unknown names never reach anything but the table.
    """
    api = REGISTRY.get((standardize(str(tool_name)), pure_api_name(str(api_name))))
    if api is None:
        return _error(f"No such API: {api_name} of tool {tool_name}.")
    if isinstance(tool_input, str):
        try:
            tool_input = json.loads(tool_input) if tool_input.strip() else {}
        except json.JSONDecodeError:
            return _error("Invalid input: not a JSON object.")
    tool_input = {} if tool_input is None else tool_input
    if not isinstance(tool_input, dict):
        return _error("Invalid input: not a JSON object.")
    args: dict[str, Any] = {}
    required = {n for n, _, _, _ in api.required}
    for name, kind, _, _ in api.params:
        value = tool_input.get(name)
        if value is None or value == "":
            if name in required:
                return _error(f"Missing required parameter: {name}.")
            continue
        if kind == "NUMBER":
            try:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
            except (TypeError, ValueError):
                return _error(f"Invalid value for {name}: {value} is not a number.")
        else:
            value = value if isinstance(value, str) else json.dumps(value)
        args[name] = value
    try:
        result = api.fn(**args)
    except ApiError as e:
        return _error(str(e))
    return {"error": "", "response": repr(result)}


def register_demo_tools(registry: Any) -> int:
    """Register every API with the tool server's ``ToolRegistry`` (``register(tool, api, fn, doc)``).

    A served function returns ``call_api``'s ``{"error", "response"}`` dict, which the server passes
    through unchanged: the agent observes exactly the text it was trained on, error field included.
    """

    def served(api: DemoApi) -> Callable[..., dict[str, str]]:
        return lambda **tool_input: call_api(api.tool, api.api, tool_input)

    for api in API_TABLE:
        registry.register(api.tool, api.api, served(api), api.doc())
    return len(API_TABLE)

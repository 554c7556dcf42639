"""The embedded demo's tool world: 8 tools (25 APIs) as pure Python, queries, and a scripted expert.

    python -m toolbench_multillm.demo_world --out data/demo --seed 0 [--n-train 200 --n-test 40]

Everything speaks ToolBench's formats, so the demo runs through the same code as the full scale:
``call_api`` answers ToolBench payloads with ``{"error", "response"}`` (DESIGN §4.2) and dispatches only
through the static ``REGISTRY``; queries carry StableToolBench ``api_list`` entries (§4.1) plus a
``ground_truth`` list that ``check_answer`` looks for; the expert writes raw answers (§3.1).
``register_demo_tools(server_registry)`` serves the APIs from the tool server, in-process.

``generate_demo_data(out)`` writes (same seed → byte-identical files):

- ``<out>/answer/G1_answer/<id>_demo.json`` — training trajectories, ids 1..n (input of ``alpha-umi prepro``);
- ``<out>/test/answer/G1_answer/<id>_demo.json`` — expert trajectories of the held-out queries, ids
  from 100001 (a second prepro data dir: its stage-2 file is the static test set);
- ``<out>/queries/test.json`` — held-out queries (query, query_id, api_list, relevant APIs,
  ground_truth, reference_answer); ``<out>/test_query_ids/G1_demo.json`` — their ids.

Expert trajectories: ``train_messages`` holds one chain per DFS branch — abandoned branches end with
``Finish(give_up_and_restart)`` and the last chain is the chosen one (preprocessing reads only that).
Chosen chains may contain a failed call (missing parameter, invalid value) and its fix; queries about
unknown entities end with a give-up. Thoughts are short templates so a tiny model can learn them.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import functools
import json
import math
import os
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from glpft.formats import write_text_atomic
from toolbench_multillm.tools import (
    FINISH_FUNCTION,
    GIVE_ANSWER,
    GIVE_UP,
    build_api,
    pure_api_name,
    split_function_name,
    standardize,
)

# --- world data (project-authored, fixed) ----------------------------------------------------

# city: (country, population, latitude, longitude, timezone)
CITIES: dict[str, tuple[str, int, float, float, str]] = {
    "Paris": ("France", 2102650, 48.86, 2.35, "UTC+1"),
    "Lyon": ("France", 516092, 45.76, 4.84, "UTC+1"),
    "Berlin": ("Germany", 3645000, 52.52, 13.40, "UTC+1"),
    "Munich": ("Germany", 1472000, 48.14, 11.58, "UTC+1"),
    "Madrid": ("Spain", 3223000, 40.42, -3.70, "UTC+1"),
    "Barcelona": ("Spain", 1620000, 41.39, 2.17, "UTC+1"),
    "Rome": ("Italy", 2873000, 41.90, 12.50, "UTC+1"),
    "Milan": ("Italy", 1352000, 45.46, 9.19, "UTC+1"),
    "Tokyo": ("Japan", 13960000, 35.68, 139.69, "UTC+9"),
    "Osaka": ("Japan", 2691000, 34.69, 135.50, "UTC+9"),
    "Ottawa": ("Canada", 1017000, 45.42, -75.70, "UTC-5"),
    "Toronto": ("Canada", 2794000, 43.65, -79.38, "UTC-5"),
    "Canberra": ("Australia", 431000, -35.28, 149.13, "UTC+10"),
    "Sydney": ("Australia", 5312000, -33.87, 151.21, "UTC+10"),
    "Cairo": ("Egypt", 9540000, 30.04, 31.24, "UTC+2"),
    "Lima": ("Peru", 9752000, -12.05, -77.04, "UTC-5"),
}
CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "Egypt": "Cairo",
    "Peru": "Lima",
}
CONDITIONS = ("sunny", "cloudy", "rainy", "windy")
# city: (condition index, temperature in C, humidity %, air quality index)
WEATHER: dict[str, tuple[int, int, int, int]] = {
    "Paris": (1, 18, 65, 42),
    "Lyon": (0, 21, 55, 38),
    "Berlin": (2, 14, 78, 35),
    "Munich": (3, 12, 60, 30),
    "Madrid": (0, 27, 30, 55),
    "Barcelona": (0, 24, 58, 47),
    "Rome": (1, 23, 50, 51),
    "Milan": (2, 16, 82, 74),
    "Tokyo": (1, 19, 70, 61),
    "Osaka": (2, 20, 76, 58),
    "Ottawa": (3, 8, 62, 22),
    "Toronto": (1, 10, 66, 33),
    "Canberra": (0, 15, 45, 18),
    "Sydney": (3, 22, 68, 25),
    "Cairo": (0, 33, 20, 95),
    "Lima": (1, 17, 84, 67),
}
#: units per US dollar (fixed rates)
RATES = {"USD": 1.0, "EUR": 0.9, "GBP": 0.8, "JPY": 150.0, "CAD": 1.35, "AUD": 1.5, "CHF": 0.88, "INR": 83.0}
CURRENCY_NAMES = {"USD": "dollars", "EUR": "euros", "GBP": "pounds", "JPY": "yen"}
LENGTH_UNITS = {"m": 1.0, "km": 1000.0, "cm": 0.01, "mi": 1609.344, "ft": 0.3048, "in": 0.0254}
WEIGHT_UNITS = {"g": 1.0, "kg": 1000.0, "lb": 453.59237, "oz": 28.349523125}
TEMPERATURE_UNITS = ("C", "F", "K")
UNIT_NAMES = {
    "km": "kilometers",
    "m": "meters",
    "mi": "miles",
    "kg": "kilograms",
    "lb": "pounds",
    "C": "Celsius",
    "F": "Fahrenheit",
}
# code: (name, brand, price in USD, stock)
PRODUCTS: dict[str, tuple[str, str, int, int]] = {
    "P101": ("Blue Kettle", "Aqua", 35, 12),
    "P102": ("Desk Lamp", "Lumo", 48, 7),
    "P103": ("Travel Mug", "Aqua", 15, 40),
    "P104": ("Wool Scarf", "Nordy", 29, 18),
    "P105": ("Office Chair", "Sitwell", 180, 4),
    "P106": ("Wireless Mouse", "Clicko", 25, 33),
    "P107": ("Hiking Backpack", "Trailix", 95, 9),
    "P108": ("Steel Bottle", "Aqua", 22, 51),
    "P109": ("Noise Headphones", "Sonar", 150, 6),
    "P110": ("Yoga Mat", "Flexo", 40, 21),
    "P111": ("Coffee Grinder", "Brewo", 60, 11),
    "P112": ("Reading Glasses", "Lumo", 19, 26),
}
# word: (definition, synonyms, {language code: translation})
WORDS: dict[str, tuple[str, tuple[str, str], dict[str, str]]] = {
    "happy": (
        "feeling or showing pleasure",
        ("glad", "joyful"),
        {"es": "feliz", "fr": "heureux", "de": "froh"},
    ),
    "big": ("of large size", ("large", "huge"), {"es": "grande", "fr": "grand", "de": "gross"}),
    "fast": ("moving at high speed", ("quick", "rapid"), {"es": "rapido", "fr": "rapide", "de": "schnell"}),
    "small": ("of little size", ("little", "tiny"), {"es": "pequeno", "fr": "petit", "de": "klein"}),
    "cold": ("of low temperature", ("chilly", "cool"), {"es": "frio", "fr": "froid", "de": "kalt"}),
    "house": (
        "a building where people live",
        ("home", "dwelling"),
        {"es": "casa", "fr": "maison", "de": "Haus"},
    ),
    "book": (
        "a set of printed pages bound together",
        ("volume", "tome"),
        {"es": "libro", "fr": "livre", "de": "Buch"},
    ),
    "smart": (
        "having quick intelligence",
        ("clever", "bright"),
        {"es": "listo", "fr": "malin", "de": "klug"},
    ),
    "begin": (
        "to start something",
        ("start", "commence"),
        {"es": "empezar", "fr": "commencer", "de": "beginnen"},
    ),
    "quiet": ("making little noise", ("silent", "calm"), {"es": "tranquilo", "fr": "calme", "de": "ruhig"}),
    "friend": (
        "a person you like and trust",
        ("pal", "companion"),
        {"es": "amigo", "fr": "ami", "de": "Freund"},
    ),
}
LANGUAGES = {"es": "Spanish", "fr": "French", "de": "German"}
OPERATIONS = {"add": "plus", "subtract": "minus", "multiply": "times", "divide": "divided by"}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Entities the world does not know (queries about them are unsolvable: the expert gives up).
UNKNOWN = {
    "city": ("Atlantis", "Gotham", "Narnia", "Eldorado", "Lilliput", "Utopia"),
    "country": ("Wakanda", "Genovia", "Freedonia", "Ruritania"),
    "product_code": ("P901", "P902", "P950", "P977"),
    "word": ("blorft", "snazzle", "quib", "frindle"),
}


# --- the APIs (pure functions; ApiError becomes an error response) ---------------------------


class ApiError(Exception):
    """An API-level failure: answered as ``{"error": msg, "response": "{'message': msg}"}``."""


def _num(x: float, digits: int = 2) -> int | float:
    """Numbers as the tools print them: rounded (2 decimals by default), integral values as int."""
    x = round(float(x), digits)
    return int(x) if x.is_integer() else x


def fmt(x: Any) -> str:
    """A value as answers and ground truths write it: numbers exactly as the tools printed them."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return str(int(x)) if float(x).is_integer() else repr(float(x))
    return str(x)


def _lookup(table: dict[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise ApiError(f"Unknown {what}: {key}.")
    return table[key]


def _unit(table: Sequence[str], unit: str) -> str:
    if unit not in table:
        raise ApiError(f"Unknown unit: {unit}. Valid units: {', '.join(table)}.")
    return unit


def convert_length(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    meters = value * LENGTH_UNITS[_unit(list(LENGTH_UNITS), from_unit)]
    return {"value": _num(meters / LENGTH_UNITS[_unit(list(LENGTH_UNITS), to_unit)]), "unit": to_unit}


def convert_weight(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    grams = value * WEIGHT_UNITS[_unit(list(WEIGHT_UNITS), from_unit)]
    return {"value": _num(grams / WEIGHT_UNITS[_unit(list(WEIGHT_UNITS), to_unit)]), "unit": to_unit}


def convert_temperature(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    _unit(TEMPERATURE_UNITS, from_unit)
    _unit(TEMPERATURE_UNITS, to_unit)
    celsius = {"C": value, "F": (value - 32) * 5 / 9, "K": value - 273.15}[from_unit]
    out = {"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + 273.15}[to_unit]
    return {"value": _num(out), "unit": to_unit}


def _currency(code: str) -> str:
    if code not in RATES:
        raise ApiError(f"Unknown currency: {code}. Valid currencies: {', '.join(RATES)}.")
    return code


def list_currencies() -> dict[str, Any]:
    return {"currencies": list(RATES)}


def exchange_rate(from_currency: str, to_currency: str) -> dict[str, Any]:
    rate = RATES[_currency(to_currency)] / RATES[_currency(from_currency)]
    return {"from": from_currency, "to": to_currency, "rate": _num(rate, 4)}


def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict[str, Any]:
    rate = RATES[_currency(to_currency)] / RATES[_currency(from_currency)]
    return {"amount": _num(amount * rate), "currency": to_currency}


def city_info(city: str) -> dict[str, Any]:
    country, population, _, _, timezone = _lookup(CITIES, city, "city")
    return {"city": city, "country": country, "population": population, "timezone": timezone}


def cities_by_country(country: str) -> dict[str, Any]:
    _lookup(CAPITALS, country, "country")
    return {"country": country, "cities": [c for c, row in CITIES.items() if row[0] == country]}


def country_capital(country: str) -> dict[str, Any]:
    return {"country": country, "capital": _lookup(CAPITALS, country, "country")}


def distance_between(city_a: str, city_b: str) -> dict[str, Any]:
    (_, _, la1, lo1, _), (_, _, la2, lo2, _) = (
        _lookup(CITIES, city_a, "city"),
        _lookup(CITIES, city_b, "city"),
    )
    p1, p2, dl = math.radians(la1), math.radians(la2), math.radians(lo2 - lo1)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    km = 6371.0 * math.acos(max(-1.0, min(1.0, cos)))
    return {"city_a": city_a, "city_b": city_b, "distance_km": int(round(km))}


def current_weather(city: str) -> dict[str, Any]:
    cond, temp, humidity, _ = _lookup(WEATHER, city, "city")
    return {"city": city, "condition": CONDITIONS[cond], "temperature_c": temp, "humidity": humidity}


def forecast(city: str, days: float = 3) -> dict[str, Any]:
    cond, temp, _, _ = _lookup(WEATHER, city, "city")
    if days != int(days) or not 1 <= days <= 3:
        raise ApiError(f"Invalid days: {fmt(days)}. Use 1, 2 or 3.")
    rows = [
        {"day": d, "condition": CONDITIONS[(cond + d) % 4], "high_c": temp + d % 3, "low_c": temp + d % 3 - 7}
        for d in range(1, int(days) + 1)
    ]
    return {"city": city, "days": rows}


def air_quality(city: str) -> dict[str, Any]:
    aqi = _lookup(WEATHER, city, "city")[3]
    return {"city": city, "aqi": aqi, "level": "good" if aqi <= 50 else "moderate" if aqi <= 100 else "poor"}


def _date(text: str) -> dt.date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ApiError(f"Invalid date: {text}. Use YYYY-MM-DD.") from None


def add_days(date: str, days: float) -> dict[str, Any]:
    if days != int(days):
        raise ApiError(f"Invalid days: {fmt(days)}. Use a whole number.")
    return {"date": (_date(date) + dt.timedelta(days=int(days))).isoformat()}


def days_between(start_date: str, end_date: str) -> dict[str, Any]:
    return {"days": (_date(end_date) - _date(start_date)).days}


def weekday(date: str) -> dict[str, Any]:
    return {"date": date, "weekday": WEEKDAYS[_date(date).weekday()]}


def search_products(keyword: str) -> dict[str, Any]:
    hits = [
        {"product_code": code, "name": name, "price_usd": price}
        for code, (name, _, price, _) in PRODUCTS.items()
        if keyword.lower() in name.lower()
    ]
    return {"products": hits}


def product_details(product_code: str) -> dict[str, Any]:
    name, brand, price, stock = _lookup(PRODUCTS, product_code, "product code")
    return {"product_code": product_code, "name": name, "brand": brand, "price_usd": price, "stock": stock}


def order_total(product_code: str, quantity: float) -> dict[str, Any]:
    price = _lookup(PRODUCTS, product_code, "product code")[2]
    if quantity != int(quantity) or quantity < 1:
        raise ApiError(f"Invalid quantity: {fmt(quantity)}. Use a whole number of at least 1.")
    return {"product_code": product_code, "quantity": int(quantity), "total_usd": _num(price * quantity)}


def define_word(word: str) -> dict[str, Any]:
    return {"word": word, "definition": _lookup(WORDS, word, "word")[0]}


def synonyms(word: str) -> dict[str, Any]:
    return {"word": word, "synonyms": list(_lookup(WORDS, word, "word")[1])}


def translate_word(word: str, language: str) -> dict[str, Any]:
    table = _lookup(WORDS, word, "word")[2]
    if language not in table:
        raise ApiError(f"Unknown language: {language}. Valid languages: {', '.join(LANGUAGES)}.")
    return {"word": word, "language": language, "translation": table[language]}


def calculate(a: float, b: float, operation: str) -> dict[str, Any]:
    if operation not in OPERATIONS:
        raise ApiError(f"Unknown operation: {operation}. Valid operations: {', '.join(OPERATIONS)}.")
    if operation == "divide" and b == 0:
        raise ApiError("Division by zero.")
    ops: dict[str, Callable[[float, float], float]] = {
        "add": lambda x, y: x + y,
        "subtract": lambda x, y: x - y,
        "multiply": lambda x, y: x * y,
        "divide": lambda x, y: x / y,
    }
    return {"result": _num(ops[operation](a, b))}


def percentage(value: float, percent: float) -> dict[str, Any]:
    return {"result": _num(value * percent / 100)}


def prime_check(number: float) -> dict[str, Any]:
    if number != int(number) or number < 0:
        raise ApiError(f"Invalid number: {fmt(number)}. Use a whole number of at least 0.")
    n = int(number)
    return {"number": n, "is_prime": n > 1 and all(n % k for k in range(2, math.isqrt(n) + 1))}


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
_API_TABLE: tuple[DemoApi, ...] = tuple(
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
REGISTRY: dict[tuple[str, str], DemoApi] = {
    (standardize(a.tool), pure_api_name(a.api)): a for a in _API_TABLE
}
_BY_API: dict[str, DemoApi] = {a.api: a for a in _API_TABLE}


def api_docs(tools: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``api_list`` entries of every API (or of the named tools), in registry order."""
    return [a.doc() for a in _API_TABLE if tools is None or a.tool in tools]


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

    for api in _API_TABLE:
        registry.register(api.tool, api.api, served(api), api.doc())
    return len(_API_TABLE)


# --- queries ---------------------------------------------------------------------------------


@dataclass
class Task:
    """A query with the expert's solution: ordered calls (API key, arguments) and the answer."""

    query: str
    tools: list[str]
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: str = ""
    values: list[str] = field(default_factory=list)
    solvable: bool = True

    def call(self, api: str, **args: Any) -> Any:
        """Record one expert call and return its result, read back from ``call_api``'s response."""
        self.steps.append((api, args))
        obs = call_api(_BY_API[api].tool, api, args)
        if obs["error"]:
            raise ApiError(obs["error"])
        return ast.literal_eval(obs["response"])


def _rand_date(rng: random.Random) -> str:
    return (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(730))).isoformat()


def _conversion(rng: random.Random) -> Task:
    api, units = rng.choice([("convert_length", list(LENGTH_UNITS)), ("convert_weight", list(WEIGHT_UNITS)),
                             ("convert_temperature", list(TEMPERATURE_UNITS))])  # fmt: skip
    u1, u2 = rng.sample(units, 2)
    v = rng.randint(1, 100)
    t = Task(f"Convert {v} {u1} to {u2}.", ["Unit Converter"])
    r = fmt(t.call(api, value=v, from_unit=u1, to_unit=u2)["value"])
    t.answer, t.values = f"{v} {u1} is {r} {u2}.", [r]
    return t


def _currency_task(rng: random.Random) -> Task:
    c1, c2 = rng.sample(list(RATES), 2)
    if rng.random() < 0.4:
        t = Task(f"What is the exchange rate from {c1} to {c2}?", ["Fixed Rate Currency"])
        r = fmt(t.call("exchange_rate", from_currency=c1, to_currency=c2)["rate"])
        t.answer = f"1 {c1} is {r} {c2}."
    else:
        amt = rng.choice([5, 10, 20, 50, 100, 250])
        t = Task(f"How much is {amt} {c1} in {c2}?", ["Fixed Rate Currency"])
        r = fmt(t.call("convert_currency", amount=amt, from_currency=c1, to_currency=c2)["amount"])
        t.answer = f"{amt} {c1} is {r} {c2}."
    t.values = [r]
    return t


def _city_task(rng: random.Random) -> Task:
    kind = rng.randrange(4)
    if kind == 0:
        city = rng.choice(list(CITIES))
        t = Task(f"What is the population of {city}?", ["City Facts"])
        pop = fmt(t.call("city_info", city=city)["population"])
        t.answer, t.values = f"{city} has a population of {pop}.", [pop]
    elif kind == 1:
        country = rng.choice(list(CAPITALS))
        t = Task(f"Which cities in {country} do you know?", ["City Facts"])
        cities = t.call("cities_by_country", country=country)["cities"]
        t.answer, t.values = f"The known cities in {country} are {', '.join(cities)}.", cities
    elif kind == 2:
        country = rng.choice(list(CAPITALS))
        t = Task(f"What is the capital of {country}?", ["City Facts"])
        cap = t.call("country_capital", country=country)["capital"]
        t.answer, t.values = f"The capital of {country} is {cap}.", [cap]
    else:
        a, b = rng.sample(list(CITIES), 2)
        t = Task(f"How far is {a} from {b} in km?", ["City Facts"])
        km = fmt(t.call("distance_between", city_a=a, city_b=b)["distance_km"])
        t.answer, t.values = f"{a} is {km} km from {b}.", [km]
    return t


def _weather_task(rng: random.Random) -> Task:
    city, kind = rng.choice(list(WEATHER)), rng.randrange(3)
    if kind == 0:
        t = Task(f"What is the weather like in {city} right now?", ["Weather Table"])
        w = t.call("current_weather", city=city)
        t.answer = f"It is {w['condition']} and {w['temperature_c']} C in {city}."
        t.values = [w["condition"], fmt(w["temperature_c"])]
    elif kind == 1:
        n = rng.randint(1, 3)
        t = Task(
            f"What is the forecast for {city} for the next {n} days?".replace("next 1 days", "next day"),
            ["Weather Table"],
        )
        rows = t.call("forecast", city=city, days=n)["days"]
        t.answer = (
            f"Forecast for {city}: "
            + ", ".join(f"day {r['day']} {r['condition']} high {r['high_c']} C" for r in rows)
            + "."
        )
        t.values = [f"{r['condition']} high {r['high_c']}" for r in rows]
    else:
        t = Task(f"What is the air quality index in {city}?", ["Weather Table"])
        q = t.call("air_quality", city=city)
        t.answer, t.values = f"The air quality index in {city} is {q['aqi']} ({q['level']}).", [fmt(q["aqi"])]
    return t


def _date_task(rng: random.Random) -> Task:
    kind, d1 = rng.randrange(3), _rand_date(rng)
    if kind == 0:
        n = rng.randint(2, 120)
        t = Task(f"What date is {n} days after {d1}?", ["Date Calculator"])
        d2 = t.call("add_days", date=d1, days=n)["date"]
        t.answer, t.values = f"{n} days after {d1} is {d2}.", [d2]
    elif kind == 1:
        d2 = _rand_date(rng)
        d1, d2 = min(d1, d2), max(d1, d2)
        t = Task(f"How many days are there from {d1} to {d2}?", ["Date Calculator"])
        n = fmt(t.call("days_between", start_date=d1, end_date=d2)["days"])
        t.answer, t.values = f"There are {n} days from {d1} to {d2}.", [n]
    else:
        t = Task(f"What day of the week is {d1}?", ["Date Calculator"])
        w = t.call("weekday", date=d1)["weekday"]
        t.answer, t.values = f"{d1} is a {w}.", [w]
    return t


def _shop_task(rng: random.Random) -> Task:
    code, kind = rng.choice(list(PRODUCTS)), rng.randrange(3)
    name = PRODUCTS[code][0]
    if kind == 0:
        t = Task(f"What is the product code of the {name}?", ["Mini Shop"])
        hit = t.call("search_products", keyword=name)["products"][0]
        t.answer, t.values = f"The {name} has product code {hit['product_code']}.", [hit["product_code"]]
    elif kind == 1:
        t = Task(f"Who makes product {code} and how many are in stock?", ["Mini Shop"])
        p = t.call("product_details", product_code=code)
        t.answer, t.values = (
            f"{code} is made by {p['brand']} and {p['stock']} are in stock.",
            [p["brand"], fmt(p["stock"])],
        )
    else:
        q = rng.randint(2, 9)
        t = Task(f"What is the total price of {q} units of product {code}?", ["Mini Shop"])
        total = fmt(t.call("order_total", product_code=code, quantity=q)["total_usd"])
        t.answer, t.values = f"{q} units of {code} cost {total} USD.", [total]
    return t


def _word_task(rng: random.Random) -> Task:
    word, kind = rng.choice(list(WORDS)), rng.randrange(3)
    if kind == 0:
        t = Task(f"What does the word {word} mean?", ["Pocket Dictionary"])
        d = t.call("define_word", word=word)["definition"]
        t.answer, t.values = f"{word} means {d}.", [d]
    elif kind == 1:
        t = Task(f"Give me synonyms of {word}.", ["Pocket Dictionary"])
        syn = t.call("synonyms", word=word)["synonyms"]
        t.answer, t.values = f"Synonyms of {word} are {' and '.join(syn)}.", syn
    else:
        code = rng.choice(list(LANGUAGES))
        t = Task(f"How do you say {word} in {LANGUAGES[code]}?", ["Pocket Dictionary"])
        tr = t.call("translate_word", word=word, language=code)["translation"]
        t.answer, t.values = f"{word} in {LANGUAGES[code]} is {tr}.", [tr]
    return t


def _math_task(rng: random.Random) -> Task:
    kind = rng.randrange(3)
    if kind == 0:
        op = rng.choice(list(OPERATIONS))
        a, b = rng.randint(2, 99), rng.randint(2, 30)
        t = Task(f"What is {a} {OPERATIONS[op]} {b}?", ["Math Helper"])
        r = fmt(t.call("calculate", a=a, b=b, operation=op)["result"])
        t.answer, t.values = f"{a} {OPERATIONS[op]} {b} is {r}.", [r]
    elif kind == 1:
        p, v = rng.choice([5, 10, 15, 20, 25, 50]), rng.randint(2, 80) * 10
        t = Task(f"What is {p} percent of {v}?", ["Math Helper"])
        r = fmt(t.call("percentage", value=v, percent=p)["result"])
        t.answer, t.values = f"{p} percent of {v} is {r}.", [r]
    else:
        n = rng.randint(2, 200)
        t = Task(f"Is {n} a prime number?", ["Math Helper"])
        verdict = "is prime" if t.call("prime_check", number=n)["is_prime"] else "is not prime"
        t.answer, t.values = f"{n} {verdict}.", [f"{n} {verdict}"]
    return t


def _two_step(rng: random.Random) -> Task:
    kind = rng.randrange(6)
    if kind == 0:
        country = rng.choice(list(CAPITALS))
        t = Task(f"What is the weather like in the capital of {country}?", ["City Facts", "Weather Table"])
        cap = t.call("country_capital", country=country)["capital"]
        w = t.call("current_weather", city=cap)
        t.answer = (
            f"The capital of {country} is {cap}. It is {w['condition']} and {w['temperature_c']} C there."
        )
        t.values = [cap, w["condition"], fmt(w["temperature_c"])]
    elif kind == 1:
        country = rng.choice(list(CAPITALS))
        t = Task(f"What is the population of the capital of {country}?", ["City Facts"])
        cap = t.call("country_capital", country=country)["capital"]
        pop = fmt(t.call("city_info", city=cap)["population"])
        t.answer, t.values = f"The capital of {country} is {cap}, with a population of {pop}.", [cap, pop]
    elif kind == 2:
        city = rng.choice(list(WEATHER))
        t = Task(f"What is the temperature in {city} now in Fahrenheit?", ["Weather Table", "Unit Converter"])
        c = t.call("current_weather", city=city)["temperature_c"]
        f = fmt(t.call("convert_temperature", value=c, from_unit="C", to_unit="F")["value"])
        t.answer, t.values = f"It is {c} C in {city}, which is {f} F.", [f]
    elif kind == 3:
        d1, n = _rand_date(rng), rng.randint(2, 90)
        t = Task(f"What day of the week is {n} days after {d1}?", ["Date Calculator"])
        d2 = t.call("add_days", date=d1, days=n)["date"]
        w = t.call("weekday", date=d2)["weekday"]
        t.answer, t.values = f"{n} days after {d1} is {d2}, a {w}.", [d2, w]
    elif kind == 4:
        name = PRODUCTS[rng.choice(list(PRODUCTS))][0]
        t = Task(f"Which brand makes the {name}, and how many are in stock?", ["Mini Shop"])
        code = t.call("search_products", keyword=name)["products"][0]["product_code"]
        p = t.call("product_details", product_code=code)
        t.answer = f"The {name} ({code}) is made by {p['brand']} and {p['stock']} are in stock."
        t.values = [p["brand"], fmt(p["stock"])]
    else:
        code, cur = rng.choice(list(PRODUCTS)), rng.choice(["EUR", "GBP", "JPY", "CAD", "INR"])
        t = Task(f"How much does product {code} cost in {cur}?", ["Mini Shop", "Fixed Rate Currency"])
        usd = t.call("product_details", product_code=code)["price_usd"]
        r = fmt(t.call("convert_currency", amount=usd, from_currency="USD", to_currency=cur)["amount"])
        t.answer, t.values = f"{code} costs {usd} USD, which is {r} {cur}.", [r]
    return t


def _long(rng: random.Random) -> Task:
    kind = rng.randrange(4)
    if kind == 0:  # 3 calls
        country = rng.choice(list(CAPITALS))
        city = rng.choice([c for c in CITIES if c != CAPITALS[country]])
        t = Task(
            f"How far is {city} from the capital of {country}, in miles?", ["City Facts", "Unit Converter"]
        )
        cap = t.call("country_capital", country=country)["capital"]
        km = t.call("distance_between", city_a=city, city_b=cap)["distance_km"]
        mi = fmt(t.call("convert_length", value=km, from_unit="km", to_unit="mi")["value"])
        t.answer, t.values = f"{city} is {km} km from {cap}, which is {mi} mi.", [cap, mi]
    elif kind == 1:  # 3 calls
        country = rng.choice(list(CAPITALS))
        t = Task(
            f"What are the weather and air quality in the capital of {country}?",
            ["City Facts", "Weather Table"],
        )
        cap = t.call("country_capital", country=country)["capital"]
        w = t.call("current_weather", city=cap)
        aqi = fmt(t.call("air_quality", city=cap)["aqi"])
        t.answer = (
            f"In {cap} it is {w['condition']} and {w['temperature_c']} C, with air quality index {aqi}."
        )
        t.values = [cap, w["condition"], fmt(w["temperature_c"]), aqi]
    elif kind == 2:  # 4 calls
        c1, c2 = rng.sample(list(CAPITALS), 2)
        t = Task(
            f"How far apart are the capitals of {c1} and {c2}, in miles?", ["City Facts", "Unit Converter"]
        )
        a = t.call("country_capital", country=c1)["capital"]
        b = t.call("country_capital", country=c2)["capital"]
        km = t.call("distance_between", city_a=a, city_b=b)["distance_km"]
        mi = fmt(t.call("convert_length", value=km, from_unit="km", to_unit="mi")["value"])
        t.answer, t.values = f"{a} and {b} are {km} km apart, which is {mi} mi.", [a, b, mi]
    else:  # 4 calls
        name, q = PRODUCTS[rng.choice(list(PRODUCTS))][0], rng.randint(2, 6)
        cur = rng.choice(["EUR", "GBP", "JPY", "CAD", "AUD"])
        t = Task(f"I want {q} units of the {name}. Who makes it and what is the total in {cur}?",
                 ["Mini Shop", "Fixed Rate Currency"])  # fmt: skip
        code = t.call("search_products", keyword=name)["products"][0]["product_code"]
        brand = t.call("product_details", product_code=code)["brand"]
        usd = t.call("order_total", product_code=code, quantity=q)["total_usd"]
        r = fmt(t.call("convert_currency", amount=usd, from_currency="USD", to_currency=cur)["amount"])
        t.answer, t.values = (
            f"The {name} is made by {brand}. {q} units cost {usd} USD, which is {r} {cur}.",
            [brand, r],
        )
    return t


def _unsolvable(rng: random.Random) -> Task:
    """A query about an entity the world lacks: the expert's call fails and it gives up."""
    city, country = rng.choice(UNKNOWN["city"]), rng.choice(UNKNOWN["country"])
    code, word = rng.choice(UNKNOWN["product_code"]), rng.choice(UNKNOWN["word"])
    weather, facts = ["Weather Table"], ["City Facts"]
    query, tools, api, args = rng.choice(
        [
            (f"What is the weather like in {city} right now?", weather, "current_weather", {"city": city}),
            (f"What is the capital of {country}?", facts, "country_capital", {"country": country}),
            (f"What is the weather like in the capital of {country}?", facts + weather, "country_capital", {"country": country}),
            (f"Who makes product {code} and how many are in stock?", ["Mini Shop"], "product_details", {"product_code": code}),
            (f"What does the word {word} mean?", ["Pocket Dictionary"], "define_word", {"word": word}),
        ]
    )  # fmt: skip
    return Task(query, tools, [(api, args)], solvable=False)


#: (weight, builder) of the query mix; 1-call queries dominate, as in ToolBench's G1.
_SOLVABLE: tuple[tuple[int, Callable[[random.Random], Task]], ...] = (
    (2, _conversion), (2, _currency_task), (2, _city_task), (2, _weather_task), (2, _date_task),
    (2, _shop_task), (2, _word_task), (2, _math_task), (5, _two_step), (3, _long),
)  # fmt: skip


def make_task(rng: random.Random, solvable: bool = True) -> Task:
    """One random query with the expert's solution."""
    if not solvable:
        return _unsolvable(rng)
    builders = [b for w, b in _SOLVABLE for _ in range(w)]
    return rng.choice(builders)(rng)


def relevant_apis(task: Task) -> list[list[str]]:
    """``relevant APIs`` of a query: [tool_name, api_name] of each distinct API the expert calls."""
    seen: list[list[str]] = []
    for api, _ in task.steps:
        pair = [_BY_API[api].tool, api]
        if pair not in seen:
            seen.append(pair)
    return seen


# --- answer checking -------------------------------------------------------------------------

#: A number standing alone: not part of a word, a code (P101) or a date (2024-03-01).
_NUMBER = re.compile(r"(?<![\w.,-])-?\d+(?:,\d{3})*(?:\.\d+)?(?!\d|[.,-]\d)")


def _contains(answer: str, value: str) -> bool:
    value = value.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", value):
        target = float(value)
        return any(abs(float(m.group().replace(",", "")) - target) < 1e-6 for m in _NUMBER.finditer(answer))
    return re.search(r"(?<!\w)" + re.escape(value.lower()) + r"(?!\w)", answer.lower()) is not None


def check_answer(query: dict[str, Any] | Sequence[str], final_answer: str | None) -> bool:
    """True when every ground-truth value appears in the answer (numbers compared as numbers, text
    case-insensitively as whole words). ``query`` is a query record with ``ground_truth`` or the values."""
    values = query["ground_truth"] if isinstance(query, dict) else query
    if not final_answer or not values:
        return False
    return all(_contains(final_answer, str(v)) for v in values)


# --- the scripted expert ---------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are AutoGPT, you can use many tools(functions) to do the following task.\n"
    "First I will give you the task description, and your task start.\n"
    "At each step, you need to give your thought to analyze the status now and what to do next, with a function "
    "call to actually excute your step.\nAfter the call, you will get the call result, and you are now in a new state.\n"
    "Then you will analyze your status now, then decide what to do next...\n"
    "After many (Thought-call) pairs, you finally perform the task, then you can give your finial answer.\n"
    "Remember: \n1.the state change is irreversible, you can't go back to one of the former state, if you want to "
    'restart the task, say "I give up and restart".\n2.All the thought is short, at most in 5 sentence.\n'
    "3.You can do more then one trys, so if your plan is to continusly try some conditions, you can do one of the "
    "conditions per try.\nLet's Begin!\nTask description: You should use functions to help handle the real time user "
    'querys. Remember:\n1.ALWAYS call "Finish" function at the end of the task. And the final answer should contain '
    "enough information to show to the user,If you can't handle the task, or you find that function calls always "
    "fail(the function is not valid now), use function Finish->give_up_and_restart.\n2.Do not use origin tool names, "
    "use only subfunctions' names.\nYou have access of the following tools:\n"
)

#: Wrong spellings of valid values (the "invalid value" mistake the expert sometimes makes first).
_ALIASES = {**UNIT_NAMES, **CURRENCY_NAMES, **LANGUAGES}


@dataclass
class _Expert:
    """Builds the message chains of one task; every observation comes from ``call_api``."""

    rng: random.Random
    fix_rate: float
    restart_rate: float
    calls: int = 0

    def assistant(self, content: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        call = {"name": name, "arguments": json.dumps(arguments)}
        return {"role": "assistant", "content": content, "function_call": call}

    def call(
        self, api: DemoApi, args: dict[str, Any], thought: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """[assistant call, function observation] and the observation."""
        obs = call_api(api.tool, api.api, args)
        msg = {"role": "function", "name": api.function_name, "content": json.dumps(obs)}
        return [self.assistant(thought, api.function_name, args), msg], obs

    @staticmethod
    def thought(api: DemoApi, args: dict[str, Any]) -> str:
        purpose = api.purpose.format(**{n: fmt(args.get(n, ex)) for n, _, _, ex in api.params})
        return f"I will call {api.function_name} to {purpose}."

    def mistake(self, api: DemoApi, args: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        """A wrong version of a call and the thought that fixes it, or None when the API takes no input."""
        bad = [(n, v) for n, v in args.items() if isinstance(v, str) and v in _ALIASES]
        if bad and self.rng.random() < 0.5:
            name, value = self.rng.choice(bad)
            fix = f"{_ALIASES[value]} is not a valid {name}. I will call {api.function_name} again with {value}."
            return {**args, name: _ALIASES[value]}, fix
        required = [n for n, _, _, _ in api.required]
        if not required:
            return None
        name = self.rng.choice(required)
        fix = (
            f"The call failed because {name} was missing. I will call {api.function_name} again with {name}."
        )
        return {k: v for k, v in args.items() if k != name}, fix

    @staticmethod
    def abandon(api: DemoApi, args: dict[str, Any]) -> dict[str, Any] | None:
        """Arguments for a doomed first try (a misspelled text argument, else no input), or None."""
        good = call_api(api.tool, api.api, args)
        for name, kind, _, _ in api.required:
            if kind == "STRING" and isinstance(args.get(name), str):
                wrong = {**args, name: args[name] + args[name][-1]}
                if call_api(api.tool, api.api, wrong) != good:
                    return wrong
        return {} if call_api(api.tool, api.api, {}) != good else None

    def finish(self, thought: str, args: dict[str, Any]) -> dict[str, Any]:
        return self.assistant(thought, "Finish", args)

    def chains(self, task: Task, head: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """All DFS branches: abandoned ones (ending in a give-up) first, the chosen chain last."""
        branches: list[list[dict[str, Any]]] = []
        chain = list(head)
        restart_at = (
            self.rng.randrange(len(task.steps))
            if task.solvable and self.rng.random() < self.restart_rate
            else -1
        )
        fix_at = (
            self.rng.randrange(len(task.steps)) if task.solvable and self.rng.random() < self.fix_rate else -1
        )
        for i, (name, args) in enumerate(task.steps):
            api = _BY_API[name]
            thought = self.thought(api, args)
            if i == restart_at and (doomed := self.abandon(api, args)) is not None:
                msgs, _ = self.call(api, doomed, thought)
                give_up = self.finish(
                    "The call did not give what I need. I will give up and restart.", {"return_type": GIVE_UP}
                )
                branches.append(chain + msgs + [give_up])
            if i == fix_at and (wrong := self.mistake(api, args)) is not None:
                bad_args, fix_thought = wrong
                msgs, _ = self.call(api, bad_args, thought)
                chain += msgs
                thought = fix_thought
            msgs, obs = self.call(api, args, thought)
            chain += msgs
            if obs["error"]:  # an unknown entity: nothing else can work
                value = next(iter(args.values()), "")
                text = f"{value} is unknown to {api.function_name}, so I cannot answer. I will give up and restart."
                return branches + [chain + [self.finish(text, {"return_type": GIVE_UP})]]
        args = {"return_type": GIVE_ANSWER, "final_answer": task.answer}
        return branches + [chain + [self.finish("I now have the answer.", args)]]


def expert_answer(
    task: Task, rng: random.Random, fix_rate: float = 0.25, restart_rate: float = 0.15
) -> dict[str, Any]:
    """The raw ToolBench answer file (DESIGN §3.1) of the scripted expert solving ``task``."""
    docs = api_docs(task.tools)
    functions = [build_api(d).schema for d in docs] + [FINISH_FUNCTION]
    system = SYSTEM_PROMPT + "".join(
        f"{i}.{standardize(tool)}: {TOOLS[tool][1]}\n"
        for i, tool in enumerate(sorted(set(task.tools), key=list(TOOLS).index), 1)
    )
    head = [{"role": "system", "content": system}, {"role": "user", "content": f"\n{task.query}\nBegin!\n"}]
    expert = _Expert(rng, fix_rate, restart_rate)
    chains = expert.chains(task, head)
    final = json.loads(chains[-1][-1]["function_call"]["arguments"])
    return {
        "answer_generation": {
            "valid_data": True,
            "query_count": expert.calls,
            "total_tokens": 0,
            "final_answer": json.dumps(final) if final["return_type"] == GIVE_ANSWER else "",
            "finish_type": "give_answer" if final["return_type"] == GIVE_ANSWER else "give_up",
            "function": functions,
            "chain": [],
            "train_messages": chains,
            "query": task.query,
        }
    }


def replay_mismatches(answer: dict[str, Any]) -> list[str]:
    """Re-run every call of every chain against ``call_api``; one line per observation that differs."""
    problems = []
    for b, chain in enumerate(answer["answer_generation"]["train_messages"]):
        for i, msg in enumerate(chain):
            call = msg.get("function_call") if msg["role"] == "assistant" else None
            if not call or call["name"] == "Finish":
                continue
            api, tool = split_function_name(call["name"])
            want = json.dumps(call_api(tool, api, call["arguments"]))
            nxt = chain[i + 1] if i + 1 < len(chain) else {}
            if nxt.get("role") != "function" or nxt.get("content") != want or nxt.get("name") != call["name"]:
                problems.append(f"chain {b} message {i + 1}: {nxt.get('content')!r} != {want!r}")
    return problems


# --- data generation -------------------------------------------------------------------------


def _write_json(path: str, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


#: Query id of the first held-out query (training queries are numbered from 1).
TEST_ID_START = 100001


def _unique_tasks(rng: random.Random, n: int, seen: set[str], unsolvable_rate: float) -> list[Task]:
    tasks: list[Task] = []
    for _ in range(1000 * n + 1000):
        if len(tasks) == n:
            return tasks
        task = make_task(rng, solvable=rng.random() >= unsolvable_rate)
        if task.query not in seen:
            seen.add(task.query)
            tasks.append(task)
    raise ValueError(f"cannot draw {n} distinct queries (the demo world has too few)")


def generate_demo_data(
    out_dir: str | os.PathLike,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 40,
    unsolvable_rate: float = 0.1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the demo data set (see the module docstring); returns its paths and counts.

    Test queries are all solvable, distinct from the training queries, and independent of ``n_train``
    (ids from ``TEST_ID_START``; training ids 1..n_train). Raises FileExistsError when ``out_dir``
    already holds demo files, unless ``overwrite`` (which first removes the old ones).
    """
    if not 0 < n_train < TEST_ID_START or n_test < 0:
        raise ValueError(f"need 0 < n_train < {TEST_ID_START} and n_test >= 0")
    out = os.fspath(out_dir)
    paths = {
        "answer_dir": os.path.join(out, "answer", "G1_answer"),
        "test_answer_dir": os.path.join(out, "test", "answer", "G1_answer"),
        "test_queries": os.path.join(out, "queries", "test.json"),
        "test_query_ids": os.path.join(out, "test_query_ids", "G1_demo.json"),
    }
    old = [os.path.join(d, f) for d in (paths["answer_dir"], paths["test_answer_dir"]) if os.path.isdir(d)
           for f in sorted(os.listdir(d)) if f.endswith("_demo.json")]  # fmt: skip
    old += [p for p in (paths["test_queries"], paths["test_query_ids"]) if os.path.exists(p)]
    if old and not overwrite:
        raise FileExistsError(f"{old[0]}: demo data exists (pass overwrite=True / --overwrite to replace it)")
    for p in old:
        os.remove(p)
    test_rng, train_rng = random.Random(f"demo-test-{seed}"), random.Random(f"demo-train-{seed}")
    seen: set[str] = set()
    test = _unique_tasks(test_rng, n_test, seen, 0.0)
    train = _unique_tasks(train_rng, n_train, seen, unsolvable_rate)
    for i, task in enumerate(train, 1):
        _write_json(os.path.join(paths["answer_dir"], f"{i}_demo.json"), expert_answer(task, train_rng))
    records, ids = [], {}
    for i, task in enumerate(test, TEST_ID_START):
        _write_json(os.path.join(paths["test_answer_dir"], f"{i}_demo.json"), expert_answer(task, test_rng))
        records.append(
            {
                "query": task.query,
                "query_id": i,
                "api_list": api_docs(task.tools),
                "relevant APIs": relevant_apis(task),
                "ground_truth": task.values,
                "reference_answer": task.answer,
            }
        )
        ids[str(i)] = 0
    _write_json(paths["test_queries"], records)
    _write_json(paths["test_query_ids"], ids)
    return {**paths, "n_train": len(train), "n_test": len(test), "seed": seed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="demo_world", description="Write the embedded demo's data set.")
    ap.add_argument("--out", required=True, help="output folder (answer/, test/, queries/, test_query_ids/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=40)
    ap.add_argument("--overwrite", action="store_true", help="replace existing demo files")
    args = ap.parse_args(argv)
    try:
        info = generate_demo_data(args.out, args.seed, args.n_train, args.n_test, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as e:
        print(f"demo_world: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['n_train']} training trajectories and {info['n_test']} test queries under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

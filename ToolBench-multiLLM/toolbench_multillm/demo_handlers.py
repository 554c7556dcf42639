"""The pure Python function behind each of the demo's 25 APIs, computing over ``demo_tables``.

Each returns the API's result as a dict or raises ``ApiError``, which ``demo_apis.call_api`` answers as
an error response. Numbers are rounded as the tools print them (``fmt`` writes them the same way).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from toolbench_multillm.demo_tables import (
    CAPITALS,
    CITIES,
    CONDITIONS,
    LANGUAGES,
    LENGTH_UNITS,
    OPERATIONS,
    PRODUCTS,
    RATES,
    TEMPERATURE_UNITS,
    WEATHER,
    WEEKDAYS,
    WEIGHT_UNITS,
    WORDS,
)


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

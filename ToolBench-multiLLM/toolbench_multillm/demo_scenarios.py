"""The demo's queries: random scenarios (a query with the expert's calls and answer) and answer checking.

A ``Scenario`` records each expert call and reads its result back from ``call_api``, so reference
answers and ``ground_truth`` values are exactly what the tools print; ``check_answer`` looks for those
values in a final answer. Queries about unknown entities are unsolvable (the expert gives up).
"""

from __future__ import annotations

import ast
import datetime as dt
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolbench_multillm.demo_apis import API_BY_NAME, call_api
from toolbench_multillm.demo_handlers import ApiError, fmt
from toolbench_multillm.demo_tables import (
    CAPITALS,
    CITIES,
    LANGUAGES,
    LENGTH_UNITS,
    OPERATIONS,
    PRODUCTS,
    RATES,
    TEMPERATURE_UNITS,
    UNKNOWN,
    WEATHER,
    WEIGHT_UNITS,
    WORDS,
)


@dataclass
class Scenario:
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
        obs = call_api(API_BY_NAME[api].tool, api, args)
        if obs["error"]:
            raise ApiError(obs["error"])
        return ast.literal_eval(obs["response"])


def _rand_date(rng: random.Random) -> str:
    return (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(730))).isoformat()


def _conversion(rng: random.Random) -> Scenario:
    api, units = rng.choice([("convert_length", list(LENGTH_UNITS)), ("convert_weight", list(WEIGHT_UNITS)),
                             ("convert_temperature", list(TEMPERATURE_UNITS))])  # fmt: skip
    u1, u2 = rng.sample(units, 2)
    v = rng.randint(1, 100)
    t = Scenario(f"Convert {v} {u1} to {u2}.", ["Unit Converter"])
    r = fmt(t.call(api, value=v, from_unit=u1, to_unit=u2)["value"])
    t.answer, t.values = f"{v} {u1} is {r} {u2}.", [r]
    return t


def _currency_scenario(rng: random.Random) -> Scenario:
    c1, c2 = rng.sample(list(RATES), 2)
    if rng.random() < 0.4:
        t = Scenario(f"What is the exchange rate from {c1} to {c2}?", ["Fixed Rate Currency"])
        r = fmt(t.call("exchange_rate", from_currency=c1, to_currency=c2)["rate"])
        t.answer = f"1 {c1} is {r} {c2}."
    else:
        amt = rng.choice([5, 10, 20, 50, 100, 250])
        t = Scenario(f"How much is {amt} {c1} in {c2}?", ["Fixed Rate Currency"])
        r = fmt(t.call("convert_currency", amount=amt, from_currency=c1, to_currency=c2)["amount"])
        t.answer = f"{amt} {c1} is {r} {c2}."
    t.values = [r]
    return t


def _city_scenario(rng: random.Random) -> Scenario:
    kind = rng.randrange(4)
    if kind == 0:
        city = rng.choice(list(CITIES))
        t = Scenario(f"What is the population of {city}?", ["City Facts"])
        pop = fmt(t.call("city_info", city=city)["population"])
        t.answer, t.values = f"{city} has a population of {pop}.", [pop]
    elif kind == 1:
        country = rng.choice(list(CAPITALS))
        t = Scenario(f"Which cities in {country} do you know?", ["City Facts"])
        cities = t.call("cities_by_country", country=country)["cities"]
        t.answer, t.values = f"The known cities in {country} are {', '.join(cities)}.", cities
    elif kind == 2:
        country = rng.choice(list(CAPITALS))
        t = Scenario(f"What is the capital of {country}?", ["City Facts"])
        cap = t.call("country_capital", country=country)["capital"]
        t.answer, t.values = f"The capital of {country} is {cap}.", [cap]
    else:
        a, b = rng.sample(list(CITIES), 2)
        t = Scenario(f"How far is {a} from {b} in km?", ["City Facts"])
        km = fmt(t.call("distance_between", city_a=a, city_b=b)["distance_km"])
        t.answer, t.values = f"{a} is {km} km from {b}.", [km]
    return t


def _weather_scenario(rng: random.Random) -> Scenario:
    city, kind = rng.choice(list(WEATHER)), rng.randrange(3)
    if kind == 0:
        t = Scenario(f"What is the weather like in {city} right now?", ["Weather Table"])
        w = t.call("current_weather", city=city)
        t.answer = f"It is {w['condition']} and {w['temperature_c']} C in {city}."
        t.values = [w["condition"], fmt(w["temperature_c"])]
    elif kind == 1:
        n = rng.randint(1, 3)
        t = Scenario(
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
        t = Scenario(f"What is the air quality index in {city}?", ["Weather Table"])
        q = t.call("air_quality", city=city)
        t.answer, t.values = f"The air quality index in {city} is {q['aqi']} ({q['level']}).", [fmt(q["aqi"])]
    return t


def _date_scenario(rng: random.Random) -> Scenario:
    kind, d1 = rng.randrange(3), _rand_date(rng)
    if kind == 0:
        n = rng.randint(2, 120)
        t = Scenario(f"What date is {n} days after {d1}?", ["Date Calculator"])
        d2 = t.call("add_days", date=d1, days=n)["date"]
        t.answer, t.values = f"{n} days after {d1} is {d2}.", [d2]
    elif kind == 1:
        d2 = _rand_date(rng)
        d1, d2 = min(d1, d2), max(d1, d2)
        t = Scenario(f"How many days are there from {d1} to {d2}?", ["Date Calculator"])
        n = fmt(t.call("days_between", start_date=d1, end_date=d2)["days"])
        t.answer, t.values = f"There are {n} days from {d1} to {d2}.", [n]
    else:
        t = Scenario(f"What day of the week is {d1}?", ["Date Calculator"])
        w = t.call("weekday", date=d1)["weekday"]
        t.answer, t.values = f"{d1} is a {w}.", [w]
    return t


def _shop_scenario(rng: random.Random) -> Scenario:
    code, kind = rng.choice(list(PRODUCTS)), rng.randrange(3)
    name = PRODUCTS[code][0]
    if kind == 0:
        t = Scenario(f"What is the product code of the {name}?", ["Mini Shop"])
        hit = t.call("search_products", keyword=name)["products"][0]
        t.answer, t.values = f"The {name} has product code {hit['product_code']}.", [hit["product_code"]]
    elif kind == 1:
        t = Scenario(f"Who makes product {code} and how many are in stock?", ["Mini Shop"])
        p = t.call("product_details", product_code=code)
        t.answer, t.values = (
            f"{code} is made by {p['brand']} and {p['stock']} are in stock.",
            [p["brand"], fmt(p["stock"])],
        )
    else:
        q = rng.randint(2, 9)
        t = Scenario(f"What is the total price of {q} units of product {code}?", ["Mini Shop"])
        total = fmt(t.call("order_total", product_code=code, quantity=q)["total_usd"])
        t.answer, t.values = f"{q} units of {code} cost {total} USD.", [total]
    return t


def _word_scenario(rng: random.Random) -> Scenario:
    word, kind = rng.choice(list(WORDS)), rng.randrange(3)
    if kind == 0:
        t = Scenario(f"What does the word {word} mean?", ["Pocket Dictionary"])
        d = t.call("define_word", word=word)["definition"]
        t.answer, t.values = f"{word} means {d}.", [d]
    elif kind == 1:
        t = Scenario(f"Give me synonyms of {word}.", ["Pocket Dictionary"])
        syn = t.call("synonyms", word=word)["synonyms"]
        t.answer, t.values = f"Synonyms of {word} are {' and '.join(syn)}.", syn
    else:
        code = rng.choice(list(LANGUAGES))
        t = Scenario(f"How do you say {word} in {LANGUAGES[code]}?", ["Pocket Dictionary"])
        tr = t.call("translate_word", word=word, language=code)["translation"]
        t.answer, t.values = f"{word} in {LANGUAGES[code]} is {tr}.", [tr]
    return t


def _math_scenario(rng: random.Random) -> Scenario:
    kind = rng.randrange(3)
    if kind == 0:
        op = rng.choice(list(OPERATIONS))
        a, b = rng.randint(2, 99), rng.randint(2, 30)
        t = Scenario(f"What is {a} {OPERATIONS[op]} {b}?", ["Math Helper"])
        r = fmt(t.call("calculate", a=a, b=b, operation=op)["result"])
        t.answer, t.values = f"{a} {OPERATIONS[op]} {b} is {r}.", [r]
    elif kind == 1:
        p, v = rng.choice([5, 10, 15, 20, 25, 50]), rng.randint(2, 80) * 10
        t = Scenario(f"What is {p} percent of {v}?", ["Math Helper"])
        r = fmt(t.call("percentage", value=v, percent=p)["result"])
        t.answer, t.values = f"{p} percent of {v} is {r}.", [r]
    else:
        n = rng.randint(2, 200)
        t = Scenario(f"Is {n} a prime number?", ["Math Helper"])
        verdict = "is prime" if t.call("prime_check", number=n)["is_prime"] else "is not prime"
        t.answer, t.values = f"{n} {verdict}.", [f"{n} {verdict}"]
    return t


def _two_step(rng: random.Random) -> Scenario:
    kind = rng.randrange(6)
    if kind == 0:
        country = rng.choice(list(CAPITALS))
        t = Scenario(
            f"What is the weather like in the capital of {country}?", ["City Facts", "Weather Table"]
        )
        cap = t.call("country_capital", country=country)["capital"]
        w = t.call("current_weather", city=cap)
        t.answer = (
            f"The capital of {country} is {cap}. It is {w['condition']} and {w['temperature_c']} C there."
        )
        t.values = [cap, w["condition"], fmt(w["temperature_c"])]
    elif kind == 1:
        country = rng.choice(list(CAPITALS))
        t = Scenario(f"What is the population of the capital of {country}?", ["City Facts"])
        cap = t.call("country_capital", country=country)["capital"]
        pop = fmt(t.call("city_info", city=cap)["population"])
        t.answer, t.values = f"The capital of {country} is {cap}, with a population of {pop}.", [cap, pop]
    elif kind == 2:
        city = rng.choice(list(WEATHER))
        t = Scenario(
            f"What is the temperature in {city} now in Fahrenheit?", ["Weather Table", "Unit Converter"]
        )
        c = t.call("current_weather", city=city)["temperature_c"]
        f = fmt(t.call("convert_temperature", value=c, from_unit="C", to_unit="F")["value"])
        t.answer, t.values = f"It is {c} C in {city}, which is {f} F.", [f]
    elif kind == 3:
        d1, n = _rand_date(rng), rng.randint(2, 90)
        t = Scenario(f"What day of the week is {n} days after {d1}?", ["Date Calculator"])
        d2 = t.call("add_days", date=d1, days=n)["date"]
        w = t.call("weekday", date=d2)["weekday"]
        t.answer, t.values = f"{n} days after {d1} is {d2}, a {w}.", [d2, w]
    elif kind == 4:
        name = PRODUCTS[rng.choice(list(PRODUCTS))][0]
        t = Scenario(f"Which brand makes the {name}, and how many are in stock?", ["Mini Shop"])
        code = t.call("search_products", keyword=name)["products"][0]["product_code"]
        p = t.call("product_details", product_code=code)
        t.answer = f"The {name} ({code}) is made by {p['brand']} and {p['stock']} are in stock."
        t.values = [p["brand"], fmt(p["stock"])]
    else:
        code, cur = rng.choice(list(PRODUCTS)), rng.choice(["EUR", "GBP", "JPY", "CAD", "INR"])
        t = Scenario(f"How much does product {code} cost in {cur}?", ["Mini Shop", "Fixed Rate Currency"])
        usd = t.call("product_details", product_code=code)["price_usd"]
        r = fmt(t.call("convert_currency", amount=usd, from_currency="USD", to_currency=cur)["amount"])
        t.answer, t.values = f"{code} costs {usd} USD, which is {r} {cur}.", [r]
    return t


def _long(rng: random.Random) -> Scenario:
    kind = rng.randrange(4)
    if kind == 0:  # 3 calls
        country = rng.choice(list(CAPITALS))
        city = rng.choice([c for c in CITIES if c != CAPITALS[country]])
        t = Scenario(
            f"How far is {city} from the capital of {country}, in miles?", ["City Facts", "Unit Converter"]
        )
        cap = t.call("country_capital", country=country)["capital"]
        km = t.call("distance_between", city_a=city, city_b=cap)["distance_km"]
        mi = fmt(t.call("convert_length", value=km, from_unit="km", to_unit="mi")["value"])
        t.answer, t.values = f"{city} is {km} km from {cap}, which is {mi} mi.", [cap, mi]
    elif kind == 1:  # 3 calls
        country = rng.choice(list(CAPITALS))
        t = Scenario(
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
        t = Scenario(
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
        t = Scenario(f"I want {q} units of the {name}. Who makes it and what is the total in {cur}?",
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


def _unsolvable(rng: random.Random) -> Scenario:
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
    return Scenario(query, tools, [(api, args)], solvable=False)


#: (weight, builder) of the query mix; 1-call queries dominate, as in ToolBench's G1.
_SOLVABLE: tuple[tuple[int, Callable[[random.Random], Scenario]], ...] = (
    (2, _conversion), (2, _currency_scenario), (2, _city_scenario), (2, _weather_scenario),
    (2, _date_scenario), (2, _shop_scenario), (2, _word_scenario), (2, _math_scenario),
    (5, _two_step), (3, _long),
)  # fmt: skip


def make_scenario(rng: random.Random, solvable: bool = True) -> Scenario:
    """One random query with the expert's solution."""
    if not solvable:
        return _unsolvable(rng)
    builders = [b for w, b in _SOLVABLE for _ in range(w)]
    return rng.choice(builders)(rng)


def relevant_apis(scenario: Scenario) -> list[list[str]]:
    """``relevant APIs`` of a query: [tool_name, api_name] of each distinct API the expert calls."""
    seen: list[list[str]] = []
    for api, _ in scenario.steps:
        pair = [API_BY_NAME[api].tool, api]
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

"""The embedded demo's world data: the fixed, project-authored tables its 25 APIs answer from.

Cities, weather, exchange rates, units, products, words and the entities the world does not know
(queries about those are unsolvable). ``demo_handlers`` computes over these tables; ``demo_scenarios``
draws query arguments from them.
"""

from __future__ import annotations

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

"""StableToolBench's server rules (toolbench_multillm.stb): names, arguments, keys, check_result, docs.

Expected values are worked out by hand from its ``server/main.py`` and ``utils.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glpft.formats import FormatError
from toolbench_multillm.stb import (
    PARSE_ERROR,
    StbInputError,
    StbLocation,
    ToolDocs,
    check_result,
    choose_examples,
    parse_input,
    standardize_category,
    stb_key,
    stb_location,
)

TOOLS = Path(__file__).resolve().parents[1] / "assets" / "stb_cache" / "tools"


@pytest.mark.parametrize(
    "category, expected",
    [
        ("Data", "Data"),
        ("News, Media", "News_Media"),  # ", " → "__" → "_"
        ("Business Software", "Business_Software"),
        ("Artificial Intelligence/Machine Learning", "Artificial_Intelligence_Machine_Learning"),
        ("a , b", "a__b"),  # "a___b": one pass of "__" → "_" leaves "a__b" (its str.replace)
        ("Video_Images", "Video_Images"),
    ],
)
def test_category_folder_is_computed_as_its_server_does(category, expected):
    assert standardize_category(category) == expected


@pytest.mark.parametrize(
    "request_names, expected",
    [
        (("Data", "weather_api", "get_forecast"), ("Data", "weather_api_for_Data", "get_forecast")),
        (("Data", "Weather API", "Get Forecast"), ("Data", "weather_api_for_Data", "get_forecast")),
        # the api name loses "_for_<tool as sent>" and everything after it
        (
            ("Data", "weather_api", "get_forecast_for_weather_api"),
            ("Data", "weather_api_for_Data", "get_forecast"),
        ),
        # a tool name already carrying "_for_<category>" is the folder as sent
        (
            ("News, Media", "headlines_for_News_Media", "top"),
            ("News_Media", "headlines_for_News_Media", "top"),
        ),
        # ... but only that exact suffix: otherwise it is standardised and suffixed again
        (("Data", "headlines_for_News_Media", "top"), ("Data", "headlines_for_news_media_for_Data", "top")),
        # reserved api names get "is_"; a digit-leading tool name gets "get_"
        (("Data", "weather_api", "id"), ("Data", "weather_api_for_Data", "is_id")),
        (("Data", "3d tool", "From"), ("Data", "get_3d_tool_for_Data", "is_from")),
        # the split uses the tool name as sent: a standardised api does not contain "_for_Weather API"
        (
            ("Data", "Weather API", "get_for_weather_api"),
            ("Data", "weather_api_for_Data", "get_for_weather_api"),
        ),
    ],
)
def test_cache_location_follows_prepare_tool_name_and_url(request_names, expected):
    assert stb_location(*request_names) == StbLocation(*expected)
    assert StbLocation(*expected).path("/c") == "/c/" + "/".join(expected) + ".json"


def test_arguments_follow_its_parsing_rule_and_keys_are_the_python_repr():
    assert parse_input("") == {}
    assert parse_input({"b": 1, "a": 2}) == {"b": 1, "a": 2}  # an object stays an object
    assert parse_input('{"q": "x"}') == {"q": "x"}
    assert parse_input("5") == 5 and parse_input('"text"') == "text" and parse_input("[1]") == [1]
    for bad in ("not json", "   ", "{'q': 1}", '{"q": "a\nb"}'):  # strict: a raw newline in a string fails
        with pytest.raises(StbInputError, match="Tool input parse error"):
            parse_input(bad)
    assert PARSE_ERROR == "Tool input parse error...\n"
    # the key: str() of what was parsed — key order as sent, non-ASCII kept, Python literals
    assert stb_key(parse_input("")) == "{}"
    assert stb_key(parse_input('{"b": 1, "a": "é"}')) == "{'b': 1, 'a': 'é'}"
    assert stb_key(parse_input('{"a": "é", "b": 1}')) == "{'a': 'é', 'b': 1}"
    assert stb_key(parse_input('{"q": "\\u65e5\\u672c"}')) == "{'q': '日本'}"
    assert stb_key(parse_input('{"f": true, "n": null, "x": 1.0, "o": {"k": [1, "two"]}}')) == (
        "{'f': True, 'n': None, 'x': 1.0, 'o': {'k': [1, 'two']}}"
    )
    assert stb_key(parse_input('{"q": "it\'s"}')) == "{'q': \"it's\"}"
    assert stb_key(parse_input("5")) == "5"


@pytest.mark.parametrize(
    "reply, cached",
    [
        ({"error": "", "response": "sunny"}, True),
        ({"error": "", "response": {"temp": 21}}, True),
        ({"error": "", "response": [1, 2]}, True),
        ({"response": "no error field"}, False),
        ({"error": "Message error...", "response": "x"}, False),
        ({"error": None, "response": "x"}, False),
        ({"error": ""}, False),
        ({"error": "", "response": ""}, False),
        ({"error": "", "response": "Rate limit exceeded"}, False),
        ({"error": "", "response": "request timed out"}, False),
        ({"error": "", "response": {"status": 404}}, False),  # str() of the value is searched
        ({"error": "", "response": "HTTP 500"}, False),
        ({"error": "", "response": "Service Not Found"}, False),
        ({"error": "", "response": "{'message': \"API doesn't exists\"}"}, False),
        ({"error": "", "response": "You are not subscribed. Unsubscribe?"}, False),
        ({"error": "", "response": "Invalid API key. Authorization failed"}, False),
        ({"error": "", "response": "ACCESS_DENIED"}, False),
        ({"error": "", "response": "access_denied"}, True),  # case-sensitive there
        ({"error": "", "response": "invalid consumer key"}, False),
        ({"error": "", "response": "Missing parameter: city"}, False),
        ({"error": "", "response": "name 'x' is not defined"}, False),
        ({"error": "", "response": "request invalid, data error. status_code=503"}, False),
        # its first rule wins: the tool's own answer to a wrong argument is worth keeping
        ({"error": "", "response": "f() got an unexpected keyword argument 'parameter'"}, True),
        ("not a dict", False),
    ],
)
def test_check_result_decides_which_real_replies_are_cached(reply, cached):
    assert check_result(reply) is cached


def test_examples_are_the_first_five_then_fewer_while_longer_than_2048_characters():
    short = [(f"{{'n': {i}}}", {"error": "", "response": "r"}) for i in range(8)]
    assert choose_examples(short) == short[:5]
    long = [(f"{{'n': {i}}}", {"error": "", "response": "x" * 900}) for i in range(8)]
    assert choose_examples(long) == long[:2]  # three would pass 2048 characters
    huge = [("{}", {"error": "", "response": "x" * 5000})]
    assert choose_examples(huge) == huge  # never fewer than one (the prompt then cuts the text)
    assert choose_examples([]) == []


def test_api_docs_are_built_as_its_gpt_and_mirrorapi_servers_build_them(tmp_path):
    docs = ToolDocs(str(TOOLS))
    loc = stb_location("Data", "weather_api", "get_forecast")
    assert docs.gpt_doc(loc, "weather_api") == {
        "tool_description": "Weather of a city",
        "api_info": [{"name": "Get Forecast", "description": "Forecast for a city"}],
    }
    # its tool file is found from the request's name: standardised, cut at "_for_"
    assert docs.gpt_doc(stb_location("Data", "Weather API_for_Data", "get_forecast"), "Weather API_for_Data")[
        "tool_description"
    ] == ("Weather of a city")
    # paper parity: "is_id" is compared with standardize("id") and matches nothing
    assert docs.gpt_doc(stb_location("Data", "weather_api", "id"), "weather_api")["api_info"] == []
    assert docs.gpt_doc(stb_location("Other", "weather_api", "x"), "weather_api") == {
        "tool_description": "",
        "api_info": "",
    }
    mirror = docs.mirror_doc(loc, "weather_api")
    assert mirror == {
        "api_name": "Get Forecast",
        "api_description": "Forecast for a city",
        "required_parameters": [
            {"name": "city", "type": "STRING", "description": "city name", "default": "Paris"}
        ],
        "optional_parameters": [
            {"name": "days", "type": "NUMBER", "description": "days ahead", "default": "1"}
        ],
        "tool_description": "Weather of a city",
        "tool_name": "weather_api",
        "tool_category": "Data",
    }
    assert docs.mirror_doc(loc, "weather_api", raw_api_name=False)["api_name"] == "get_forecast"
    assert docs.mirror_doc(stb_location("Data", "weather_api", "id"), "weather_api") is None
    (tmp_path / "Data").mkdir()
    (tmp_path / "Data" / "broken.json").write_text("{not json")
    (tmp_path / "Data" / "shape.json").write_text('{"api_list": [{"name": "a"}]}')
    bad = ToolDocs(str(tmp_path))
    for name in ("broken", "shape", "missing"):
        assert bad.gpt_doc(stb_location("Data", name, "a"), name) == {"tool_description": "", "api_info": ""}
        assert bad.mirror_doc(stb_location("Data", name, "a"), name) is None
    with pytest.raises(FormatError, match="no such directory"):
        ToolDocs(str(tmp_path / "nope"))

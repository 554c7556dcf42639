"""StableToolBench's simulator formats against a scripted OpenAI-compatible server on 127.0.0.1.

Each format's request body is checked exactly (its prompts, layout and parameters, as its ``server/``
code sends them), and so are its reply reading, retries, what is cached from a simulator and from a real
upstream (its ``check_result``), and provenance in ``/stats``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from test_judge import FakeJudgeServer, reply

from toolbench_multillm import env as E
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.server import ServerConfig, create_app, main
from toolbench_multillm.simulator import Simulator, parse_mirrorapi, parse_stb_gpt
from toolbench_multillm.stb import ToolDocs, stb_location
from toolbench_multillm.stb_cache import StbFolder
from toolbench_multillm.stb_prompts import GPT_SYSTEM, MIRRORAPI_SYSTEM

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "stb_cache"
KEY = "sk-sim-test-4242"
ROME = {
    "category": "Data",
    "tool_name": "weather_api",
    "api_name": "get_forecast",
    "tool_input": '{"city": "Rome"}',
    "strip": "",
    "toolbench_key": "",
}
LOC = stb_location("Data", "weather_api", "get_forecast")

#: str() of the api file's first five entries, as its GPT simulator shows them (462 characters: all five fit)
EXAMPLES = (
    "[(\"{'city': 'Paris'}\", {'error': '', 'response': {'temp': 21, 'sky': 'clear'}}), "
    "(\"{'city': 'Zürich', 'days': 2}\", {'error': '', 'response': 'Zürich: 2 days of snow'}), "
    "('{}', {'error': '', 'response': 'Forecast needs a city'}), "
    "(\"{'city': 'Oslo', 'opts': {'units': 'metric', 'lang': 'no'}}\", {'error': '', 'response': "
    "[{'day': 1, 'temp': -3}, {'day': 2, 'temp': -5}]}), "
    "(\"{'city': 'Lima', 'days': True, 'note': None}\", {'error': '', 'response': 'Lima: sunny'})]"
)
GPT_USER = (
    "API Documentation:{'tool_description': 'Weather of a city', 'api_info': "
    "[{'name': 'Get Forecast', 'description': 'Forecast for a city'}]}\n"
    "API Examples:" + EXAMPLES + "\nAPI Input:{'city': 'Rome'}\n"
)
MIRROR_DOC = (
    "{'api_name': 'Get Forecast', 'api_description': 'Forecast for a city', 'required_parameters': "
    "[{'name': 'city', 'type': 'STRING', 'description': 'city name', 'default': 'Paris'}], "
    "'optional_parameters': [{'name': 'days', 'type': 'NUMBER', 'description': 'days ahead', 'default': '1'}], "
    "'tool_description': 'Weather of a city', 'tool_name': 'weather_api', 'tool_category': 'Data'}"
)


def config(tmp_path, srv, fmt: str, **kw) -> ServerConfig:
    sim = Simulator(srv.base_url, kw.pop("model", "sim-model"), KEY, format=fmt, retry_delay=0.0, backoff=0.0)
    kw.setdefault("stb_folder", StbFolder(str(ASSETS / "tool_response_cache")))
    cfg = ServerConfig(
        cache=ResponseCache(tmp_path / "c.sqlite"),
        simulator=sim,
        stb_docs=ToolDocs(str(ASSETS / "tools")),
        **kw,
    )
    cfg.stb_rules = True
    return cfg


def test_prompts_are_stabletoolbenchs_byte_for_byte():
    # sha256 of the literals in THUNLP-MT/StableToolBench server/main.py (fake_response_function_chat)
    # and server/system_prompts.py (SFT_SYSTEM), evaluated as Python evaluates them
    gpt, sft = (hashlib.sha256(p.encode()).hexdigest() for p in (GPT_SYSTEM, MIRRORAPI_SYSTEM))
    assert (gpt, len(GPT_SYSTEM)) == (
        "cb0a04b8c63e55ae9653b343596d278e2645cee8ddae1e8d48459672966eec66",
        3995,
    )
    assert (sft, len(MIRRORAPI_SYSTEM)) == (
        "8cdc5f128160a2146e872e815cf15c81e73c05670ddd74fd649e28fcffef06ec",
        2888,
    )
    assert GPT_SYSTEM.startswith("\nImagine you are an API Server") and GPT_SYSTEM.endswith(
        "given input.\n    "
    )
    assert "Your will also be given" in GPT_SYSTEM and "\"tool_input\": {'listing_id': '456789'" in GPT_SYSTEM
    assert "directly addressing the API's intended functionality. \nThe key" in MIRRORAPI_SYSTEM


def test_stb_gpt_request_is_its_request_exactly_and_the_openai_client_sends_the_same(tmp_path):
    content = '```json\n{"error": "", "response": {"temp": 17, "sky": "rain"}}\n```'
    with FakeJudgeServer(respond=lambda req: reply(content)) as srv:
        cfg = config(tmp_path, srv, "stb-gpt", model="gpt-4-turbo")
        with TestClient(create_app(cfg)) as c:
            answer = c.post("/virtual", json=ROME).json()
            again = c.post("/virtual", json=ROME).json()
            stats = c.get("/stats").json()
        ours = srv.requests[0]
        assert ours == {
            "model": "gpt-4-turbo",
            "messages": [{"role": "system", "content": GPT_SYSTEM}, {"role": "user", "content": GPT_USER}],
            "temperature": 0,
            "max_tokens": 1024,
            "response_format": {"type": "json_object"},
        }
        assert type(ours["temperature"]) is int  # as config.yml's `temperature: 0` goes on the wire
        assert srv.headers[0]["Authorization"] == f"Bearer {KEY}"
        import openai  # StableToolBench's own call, through the client it uses

        client = openai.OpenAI(api_key=KEY, base_url=srv.base_url, max_retries=0)
        client.chat.completions.create(
            model="gpt-4-turbo",
            messages=ours["messages"],
            max_tokens=1024,
            temperature=0,
            response_format={"type": "json_object"},
        )
        assert srv.requests[-1] == ours
    assert answer == {
        "error": "",
        "response": {"temp": 17, "sky": "rain"},
        "source": "simulated:stb-gpt:gpt-4-turbo",
    }
    assert again == answer and len(srv.requests) == 2  # the second came from the cache
    assert stats["by_source"]["simulated:stb-gpt:gpt-4-turbo"] == 2
    assert stats["simulator"] == {
        "format": "stb-gpt",
        "model": "gpt-4-turbo",
        "temperature": 0.0,
        "seed": None,
        "base_url": srv.base_url,
    }
    value, source, meta = cfg.stb.get(LOC, "{'city': 'Rome'}")  # its layout, its key
    assert value == {"error": "", "response": {"temp": 17, "sky": "rain"}} and source == answer["source"]
    assert json.loads(meta) == {"format": "stb-gpt", "model": "gpt-4-turbo", "temperature": 0.0, "seed": None}


def test_stb_gpt_examples_are_cut_to_its_2048_characters_and_new_entries_follow_the_file(tmp_path):
    with FakeJudgeServer(respond=lambda req: reply('{"error": "", "response": "' + "w" * 900 + '"}')) as srv:
        cfg = config(tmp_path, srv, "stb-gpt", stb_folder=None)
        with TestClient(create_app(cfg)) as c:
            for city in ("A", "B", "C"):
                c.post("/virtual", json={**ROME, "tool_input": json.dumps({"city": city})})
        users = [r["messages"][1]["content"] for r in srv.requests]
    assert "API Examples:[]\n" in users[0]  # no api file: no examples, as its server
    assert "API Examples:[(\"{'city': 'A'}\", {'error': '', 'response': 'www" in users[1]
    third = users[2].split("API Examples:")[1].split("\nAPI Input:")[0]
    assert third.startswith("[(\"{'city': 'A'}\"") and "'B'" in third  # two fit in 2048 characters
    assert users[2].endswith("API Input:{'city': 'C'}\n")


def test_stb_gpt_asks_three_times_for_json_then_gives_no_answer_and_caches_nothing(tmp_path):
    with FakeJudgeServer(respond=lambda req: reply("Sure! Here is the response.")) as srv:
        cfg = config(tmp_path, srv, "stb-gpt")
        with TestClient(create_app(cfg)) as c:
            answer = c.post("/virtual", json=ROME).json()
    assert len(srv.requests) == 3 and answer["source"] == "none"
    assert cfg.stb.get(LOC, "{'city': 'Rome'}") is None  # fixes: its server cached "Failed to generate"
    assert parse_stb_gpt('```json\n{"error": "", "response": [1]}\n```') == ("", [1])
    assert parse_stb_gpt("[1, 2]") is None and parse_stb_gpt(None) is None
    assert parse_stb_gpt('{"response": "no error field"}') == ("", "no error field")


@pytest.mark.parametrize(
    "fmt, api_name", [("mirrorapi", "Get Forecast"), ("mirrorapi-cache", "get_forecast")]
)
def test_mirrorapi_request_is_its_request_exactly(tmp_path, fmt, api_name):
    with FakeJudgeServer(respond=lambda req: reply('{"error": "", "response": {"temp": 3}}')) as srv:
        cfg = config(tmp_path, srv, fmt, model="MirrorAPI")
        call = {**ROME, "tool_input": '{"city": "Rome", "toolbench_key": "x"}'}
        with TestClient(create_app(cfg)) as c:
            answer = c.post("/virtual", json=call).json()
            unknown = c.post("/virtual", json={**ROME, "tool_name": "nope", "tool_input": "{}"})
    doc = MIRROR_DOC.replace("'Get Forecast'", repr(api_name))
    assert srv.requests == [
        {
            "model": "MirrorAPI",
            "messages": [
                {"role": "system", "content": MIRRORAPI_SYSTEM},
                {"role": "user", "content": f"API doc:\n{doc}\n\nRequest:\n{{'city': 'Rome'}}"},
            ],
            "temperature": 0.1,
            "max_tokens": 2048,
            "seed": 42,
        }
    ]  # one request; none for a tool without a doc (its server fails there)
    assert answer == {"error": "", "response": {"temp": 3}, "source": f"simulated:{fmt}:MirrorAPI"}
    assert unknown.status_code == 404 and unknown.json()["source"] == "none"


def test_mirrorapi_reply_reader_keeps_its_quirks():
    # its SFT example teaches unescaped quotes: JSON fails and its regular expression takes the rest
    assert parse_mirrorapi('{"error": "", "response": "{"temp": 3}"}') == ("", '{"temp": 3}"}')
    mech = '{"mechanism_of_the_api": "it looks up", "error": "", "response": "sunny"\n}'
    assert parse_mirrorapi(mech) == ("", "sunny")
    assert parse_mirrorapi('{"mechanism_of_the_api": "x", "error": "", "response": "a"b"}') == ("", 'a"b"}')
    assert parse_mirrorapi('{"error": "bad city", "response": ""}') == ("bad city", "")
    for failed in ('{"error": "", "response": ""}', '{"response": "x"}', "[1]", "no fields", None):
        assert parse_mirrorapi(failed) is None


def test_upstream_replies_are_cached_by_check_result_and_the_rest_go_to_the_simulator(tmp_path):
    replies = {
        "Rome": {"error": "", "response": "sunny in Rome"},
        "Bari": {"error": "", "response": "Rate limit hit"},
    }

    def upstream(request):
        city = json.loads(json.loads(request.content)["tool_input"])["city"]
        return httpx.Response(
            200, json=replies.get(city, {"error": "", "response": "parameter city is invalid"})
        )

    up = E.ToolClient(
        "http://up.test/rapidapi",
        "k",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(upstream)),
    )
    script = [reply('{"error": "", "response": "simulated Bari"}')]
    with FakeJudgeServer(respond=lambda req: (500, {"error": "down"}), script=script) as srv:
        cfg = config(tmp_path, srv, "stb-gpt", upstream=up)
        with TestClient(create_app(cfg)) as c:
            got = {
                city: c.post("/virtual", json={**ROME, "tool_input": json.dumps({"city": city})}).json()
                for city in ("Rome", "Bari", "Pisa")
            }
            assert (
                c.post("/virtual", json={**ROME, "tool_input": '{"city": "Rome"}'}).json()["source"]
                == "cache-real"
            )
    assert got["Rome"] == {"error": "", "response": "sunny in Rome", "source": "upstream"}
    assert got["Bari"] == {"error": "", "response": "simulated Bari", "source": "simulated:stb-gpt:sim-model"}
    # the simulator failed for Pisa: the upstream's reply (not worth caching) is served, and not cached
    assert got["Pisa"] == {"error": "", "response": "parameter city is invalid", "source": "upstream"}
    assert cfg.stb.get(LOC, "{'city': 'Rome'}")[1] == "upstream"
    assert cfg.stb.get(LOC, "{'city': 'Pisa'}") is None
    assert cfg.stb.get(LOC, "{'city': 'Bari'}")[1] == "simulated:stb-gpt:sim-model"


def test_serve_tools_flags_for_stabletoolbench(tmp_path, capsys, monkeypatch):
    from toolbench_multillm import server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda config, *a, **k: seen.setdefault("config", config))
    base = ["--cache", str(tmp_path / "c.sqlite")]
    sim = ["--simulator_base_url", "http://127.0.0.1:9/v1", "--simulator_model", "m"]
    assert main(base + ["--stb-cache-dir", str(ASSETS / "tool_response_cache")]) == 0
    cfg = seen.pop("config")
    assert cfg.stb_rules and cfg.stb_folder is not None and cfg.simulator is None
    assert (
        main(base + sim + ["--simulator_format", "mirrorapi", "--tool_root_dir", str(ASSETS / "tools")]) == 0
    )
    cfg = seen.pop("config")
    assert cfg.stb_rules and cfg.stb_docs is not None and cfg.simulator.describe() == {
        "format": "mirrorapi", "model": "m", "temperature": 0.1, "seed": 42,
    }  # fmt: skip
    assert main(base + sim + ["--lookup_rules", "project", "--simulator_temperature", "0.5"]) == 0
    cfg = seen.pop("config")
    assert not cfg.stb_rules and cfg.simulator.describe()["temperature"] == 0.5
    for argv, needle in [
        (base + ["--stb-cache-dir", str(tmp_path / "nope")], "no such directory"),
        (base + sim + ["--simulator_format", "mirrorapi"], "needs --tool_root_dir"),
        (base + ["--simulator_base_url", "http://x/v1"], "--simulator_model is required"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("alpha-umi serve-tools: ") and err.count("\n") == 1 and needle in err, err

"""The LLM simulator: prompts, reply parsing, tool docs, and failures that never become HTTP 500s."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi.testclient import TestClient

from glpft.formats import FormatError
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.server import ServerConfig, create_app
from toolbench_multillm.simulator import Simulator, load_tool_docs, parse_simulated

SECRET = "sim-secret-key-789"
KNOWN_CALL = {"tool_name": "transitaires", "api_name": "transitaire", "tool_input": '{"is_id": "NEW"}'}
NO_CACHED = {
    "error": "no cached response for transitaires/transitaire with this input",
    "response": "",
    "source": "none",
}


def mock_simulator(handler, **kwargs) -> Simulator:
    return Simulator(
        "http://llm.test/v1",
        "sim-model",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        **kwargs,
    )


def chat_reply(content) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


@pytest.fixture()
def cache_path(seeded_cache_file, tmp_path):
    """A writable copy of the seeded cache (the simulator caches what it invents)."""
    path = tmp_path / "c.sqlite"
    path.write_bytes(seeded_cache_file.read_bytes())
    return path


def test_simulator_answers_known_apis_with_validated_json_and_is_cached(seeded_cache_file, tmp_path):
    replies = iter(["not json at all", '```json\n{"error": "", "response": {"id": "SIM"}}\n```'])
    prompts = []

    def llm(request):
        body = json.loads(request.content)
        prompts.append(body["messages"][1]["content"])
        return httpx.Response(200, json={"choices": [{"message": {"content": next(replies)}}]})

    sim = Simulator(
        "http://llm.test/v1", "sim-model", http_client=httpx.Client(transport=httpx.MockTransport(llm))
    )
    cache_path = tmp_path / "c.sqlite"
    cache_path.write_bytes(seeded_cache_file.read_bytes())
    with TestClient(create_app(ServerConfig(cache=ResponseCache(cache_path), simulator=sim))) as c:
        payload = {"tool_name": "transitaires", "api_name": "transitaire", "tool_input": '{"is_id": "NEW"}'}
        assert c.post("/rapidapi", json=payload).json() == {  # an object response stays one
            "error": "",
            "response": {"id": "SIM"},
            "source": "simulated:project:sim-model",
        }
        again = c.post("/rapidapi", json=payload).json()  # from the cache, still named simulated
        assert again == {"error": "", "response": {"id": "SIM"}, "source": "simulated:project:sim-model"}
        stats = c.get("/stats").json()
        assert stats["by_source"]["simulated:project:sim-model"] == 2 and stats["hits"] == 1
        assert stats["simulator"] == {
            "format": "project",
            "model": "sim-model",
            "temperature": 0.0,
            "seed": None,
            "base_url": "http://llm.test/v1",
        }
    hit = ResponseCache(cache_path).get("transitaires", "transitaire", '{"is_id": "NEW"}')
    assert hit.source == "simulated:project:sim-model" and json.loads(hit.meta)["format"] == "project"
    assert len(prompts) == 2 and "Example response" in prompts[0] and '"is_id":"NEW"' in prompts[0]
    assert parse_simulated('{"error": ""}') is None and parse_simulated("[]") is None


@pytest.mark.parametrize(
    "failure, attempts",
    [
        (lambda request: (_ for _ in ()).throw(httpx.ConnectError(f"refused {SECRET}")), 2),
        (lambda request: httpx.Response(503, text=f"overloaded, key {SECRET}"), 2),
        (lambda request: httpx.Response(401, text=f"bad key {SECRET}"), 1),
    ],
    ids=["connection-refused", "http-503", "http-401"],
)
def test_dead_or_refusing_simulator_falls_through_to_no_cached_response(
    cache_path, caplog, failure, attempts
):
    caplog.set_level(logging.DEBUG)
    seen = []

    def llm(request):
        seen.append(request.headers.get("authorization"))
        return failure(request)

    sim = mock_simulator(llm, api_key=SECRET, backoff=0.0)
    with TestClient(create_app(ServerConfig(cache=ResponseCache(cache_path), simulator=sim))) as c:
        r = c.post("/rapidapi", json=KNOWN_CALL)
        assert r.status_code == 200 and r.json() == NO_CACHED
        by_source = c.get("/stats").json()["by_source"]
        assert by_source["simulated:project:sim-model"] == 0 and by_source["none"] == 1
    assert seen == [f"Bearer {SECRET}"] * attempts  # a few short retries, then give up
    assert "simulator" in caplog.text and SECRET not in caplog.text and SECRET not in repr(sim)


def test_default_retries_are_few_and_short(cache_path):
    seen = []

    def llm(request):
        seen.append(1)
        return httpx.Response(500)

    sim = mock_simulator(llm)
    assert (sim.client.max_retries, sim.client.backoff, sim.client.max_backoff) == (1, 0.5, 2.0)
    with TestClient(create_app(ServerConfig(cache=ResponseCache(cache_path), simulator=sim))) as c:
        assert c.post("/rapidapi", json=KNOWN_CALL).json() == NO_CACHED
    assert len(seen) == 2


def test_malformed_replies_are_asked_again_up_to_tries_then_nothing_is_cached(cache_path):
    replies = iter(
        [
            chat_reply("not json"),
            httpx.Response(200, text="<html>"),
            httpx.Response(200, json={"no": "choices"}),
            chat_reply('{"error": ""}'),
            chat_reply(["not", "a", "string"]),
        ]
    )
    sim = mock_simulator(lambda request: next(replies))
    assert sim.simulate(KNOWN_CALL, None, [], tries=3) is None
    with TestClient(create_app(ServerConfig(cache=ResponseCache(cache_path), simulator=sim))) as c:
        r = c.post("/rapidapi", json=KNOWN_CALL)  # the default: two tries
        assert r.status_code == 200 and r.json() == NO_CACHED
    assert next(replies, None) is None
    assert ResponseCache(cache_path).get("transitaires", "transitaire", '{"is_id": "NEW"}') is None


def test_simulator_with_an_invalid_url_never_causes_a_500(cache_path):
    sim = Simulator("http://[::1/v1", "sim-model", api_key=SECRET)
    assert SECRET not in repr(sim)
    with TestClient(create_app(ServerConfig(cache=ResponseCache(cache_path), simulator=sim))) as c:
        r = c.post("/rapidapi", json=KNOWN_CALL)
        assert r.status_code == 200 and r.json() == NO_CACHED


def test_repr_hides_url_credentials_and_keys():
    sim = Simulator("http://user:pw-secret@llm.test/v1/", "m", api_key=SECRET)
    assert repr(sim) == "Simulator(url='http://llm.test/v1', model='m')"


def test_tool_docs_are_loaded_by_standardised_name_and_shown_to_the_simulator(tmp_path):
    root = tmp_path / "tools"
    (root / "Data").mkdir(parents=True)
    (root / "Data" / "weather_api.json").write_text(
        json.dumps(
            {
                "tool_description": "Weather of a city",
                "api_list": [{"name": "Get Forecast", "required_parameters": [{"name": "city"}]}],
            }
        )
    )
    (root / "Data" / "broken.json").write_text("{not json")
    (root / "Data" / "notes.txt").write_text("ignored")
    (root / "README.md").write_text("not a category")
    docs = load_tool_docs(str(root))
    assert list(docs) == [("weather_api", "get_forecast")]
    assert docs["weather_api", "get_forecast"]["tool_description"] == "Weather of a city"

    prompts = []

    def llm(request):
        prompts.append(json.loads(request.content)["messages"][1]["content"])
        return chat_reply('{"error": "", "response": "sunny"}')

    config = ServerConfig(
        cache=ResponseCache(tmp_path / "empty.sqlite"), simulator=mock_simulator(llm), tool_docs=docs
    )
    with TestClient(create_app(config)) as c:
        call = {"tool_name": "weather_api", "api_name": "get_forecast", "tool_input": {"city": "Oslo"}}
        assert c.post("/rapidapi", json=call).json() == {
            "error": "",
            "response": "sunny",
            "source": "simulated:project:sim-model",
        }
        unknown = c.post("/rapidapi", json={"tool_name": "weather_api", "api_name": "other"})
        assert unknown.status_code == 404
    assert len(prompts) == 1 and "API documentation" in prompts[0] and "Weather of a city" in prompts[0]


@pytest.mark.parametrize(
    "reply",
    [
        chat_reply("[" * 20000 + "]" * 20000),
        chat_reply('{"error": "", "response": 1' + "0" * 5000 + "}"),
        chat_reply('{"error": "", "response": ' + "[" * 5000 + "]" * 5000 + "}"),
        httpx.Response(200, content=b'{"choices": ' + b"[" * 20000 + b"]" * 20000 + b"}"),
        httpx.Response(200, content=b"\xff\xfe not json"),
        httpx.Response(200, json={"choices": "not a list"}),
        httpx.Response(200, json={"choices": [{"message": {"content": {"error": "", "response": "x"}}}]}),
    ],
    ids=[
        "deep-content",
        "huge-int",
        "deep-response",
        "deep-body",
        "binary",
        "wrong-choices",
        "object-content",
    ],
)
def test_hostile_simulator_replies_are_nothing_and_the_server_answers(cache_path, reply):
    sim = mock_simulator(lambda request: reply, max_retries=0)
    assert sim.simulate(KNOWN_CALL, None, []) is None
    with TestClient(create_app(ServerConfig(cache=ResponseCache(cache_path), simulator=sim))) as c:
        r = c.post("/rapidapi", json=KNOWN_CALL)
        assert r.status_code == 200 and r.json() == NO_CACHED
        assert c.get("/health").json()["status"] == "ok"


def test_simulated_values_of_any_type_or_with_lone_surrogates_are_served_as_clean_text(cache_path):
    replies = iter(
        [
            chat_reply('{"error": "", "response": "bad \\ud800 text"}'),
            chat_reply('{"error": {"code": 3}, "response": {"deep": ' + "[" * 100 + "]" * 100 + "}}"),
            chat_reply('{"error": "", "response": "' + "z" * 5000 + '"}'),
        ]
    )
    sim = mock_simulator(lambda request: next(replies))
    config = ServerConfig(cache=ResponseCache(cache_path), simulator=sim, max_response_chars=1000)
    with TestClient(create_app(config)) as c:
        answers = [c.post("/rapidapi", json={**KNOWN_CALL, "tool_input": {"n": i}}).json() for i in range(3)]
    assert answers[0] == {"error": "", "response": "bad \ufffd text", "source": "simulated:project:sim-model"}
    # an object nested past MAX_RESPONSE_DEPTH is served as its JSON text
    assert answers[1]["error"] == '{"code": 3}' and answers[1]["response"].startswith('{"deep": [[[')
    assert answers[2]["response"] == "z" * 1000 + "..."
    assert (
        ResponseCache(cache_path).get("transitaires", "transitaire", {"n": 0}).response == "bad \ufffd text"
    )


def test_parse_simulated_never_raises():
    for text in ("[" * 20000, '{"response": 1' + "0" * 5000 + "}", '{"response": NaN}', "", None, 5):
        parsed = parse_simulated(text)
        assert parsed is None or parsed == ("", "NaN")
    assert parse_simulated('{"response": "\\ud800"}') == ("", "\ud800")  # the server replaces it


def test_a_missing_tool_root_dir_is_a_one_line_error_and_bad_tool_files_are_skipped(tmp_path, caplog):
    with pytest.raises(FormatError, match="no such directory"):
        load_tool_docs(str(tmp_path / "missing"))
    (tmp_path / "Data").mkdir()
    (tmp_path / "Data" / "deep.json").write_text("[" * 100_000)
    (tmp_path / "Data" / "list.json").write_text("[1, 2]")
    (tmp_path / "Data" / "names.json").write_text('{"api_list": [{"name": 5}, "x"]}')
    assert load_tool_docs(str(tmp_path)) == {}
    assert caplog.text.count("unreadable tool file skipped") == 3

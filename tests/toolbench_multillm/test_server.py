"""The tool server, in-process (TestClient) and as a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from toolbench_multillm import env as E
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.server import BadRequest, ServerConfig, create_app, validate_name
from toolbench_multillm.tools import toolset_from_functions

SECRET = "tb-secret-key-456"
TEN_MB = 10 * 1024 * 1024


@pytest.fixture()
def client(seeded_cache_file):
    with TestClient(create_app(ServerConfig(cache=ResponseCache(seeded_cache_file)))) as c:
        yield c


def gold_calls(answers_dir: Path):
    """(answer file, functions, [(name, arguments, content)]) of each trajectory's last chain."""
    for path in sorted(answers_dir.rglob("*.json")):
        gen = json.loads(path.read_text())["answer_generation"]
        chain = (gen.get("train_messages") or [[]])[-1]
        offered = {f["name"] for f in gen["function"]}
        calls = [
            (a["function_call"]["name"], a["function_call"]["arguments"], m["content"])
            for a, m in zip(chain, chain[1:])
            if a["role"] == "assistant" and a.get("function_call") and m["role"] == "function"
        ]
        yield path, gen["function"], [c for c in calls if c[0] in offered and c[0] != "Finish"]


def replay(answers_dir: Path, tool_client: E.ToolClient) -> int:
    """Replay every gold call through the environment; observations must be the recorded ones."""
    compared = 0
    for path, functions, calls in gold_calls(answers_dir):
        env = E.ToolEnv(toolset_from_functions(functions), tool_client, observation_format="toolbench")
        for name, arguments, content in calls:
            if "Timeout error" in content:  # a failure of the original run, deliberately not cached
                continue
            observation, status = env.step(name, arguments)
            if content.endswith("...") and len(content) == 1027:  # recorded observation was truncated
                assert observation[:1000] == content[:1000], path.name
            else:
                assert observation == content, path.name
            assert status in (E.OK, E.ERROR_FIELD), (path.name, status)
            compared += 1
    return compared


def test_replaying_gold_trajectories_returns_the_recorded_observations(client, answers_dir):
    tool_client = E.make_client("server", url="http://testserver/rapidapi", key=SECRET, http_client=client)
    assert replay(answers_dir, tool_client) >= 15
    stats = client.get("/stats").json()
    assert stats["misses"] == 0 and stats["by_source"]["cache"] >= 15


def test_alpha_umi_observation_is_the_json_encoded_response(client):
    tool_client = E.make_client("server", url="http://testserver/virtual", http_client=client)
    env = E.ToolEnv(toolset_from_functions([{"name": "transitaire_for_transitaires"}]), tool_client)
    obs, status = env.step("transitaire_for_transitaires", '{"is_id": "ACT_AGENCE_CALEDONIENNE_DE_TRANSIT"}')
    assert status == E.OK and obs.startswith("\"{'id': 'ACT_AGENCE_CALEDONIENNE_DE_TRANSIT'")


def test_known_api_with_new_input_gets_a_clear_no_cached_response_error(client):
    r = client.post(
        "/rapidapi",
        json={
            "category": "Logistics",
            "tool_name": "transitaires",
            "api_name": "transitaire",
            "tool_input": '{"is_id": "nope"}',
        },
    )
    assert r.status_code == 200 and r.json() == {
        "error": "no cached response for transitaires/transitaire with this input",
        "response": "",
    }


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"{not json", 400, "invalid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"tool_name": "x"}).encode(), 400, "api_name"),
        (json.dumps({"tool_name": "../x", "api_name": "a"}).encode(), 400, "path-like"),
        (json.dumps({"tool_name": "t", "api_name": "..\\..\\etc"}).encode(), 400, "path-like"),
        (json.dumps({"tool_name": "t", "api_name": "a", "category": "/etc"}).encode(), 400, "path-like"),
        (json.dumps({"tool_name": "t", "api_name": "a", "tool_input": 5}).encode(), 400, "tool_input"),
        (json.dumps({"tool_name": "no_such_tool", "api_name": "a"}).encode(), 404, "unknown tool"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(client, body, status, reason):
    r = client.post("/rapidapi", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and reason in r.json()["error"]
    assert client.get("/health").json()["status"] == "ok"


def test_every_standardised_name_of_the_test_queries_is_accepted(reference_dir):
    from toolbench_multillm.tools import load_queries, pure_api_name, standardize

    folder = reference_dir / "stabletoolbench/solvable_queries/test_instruction"
    for path in sorted(folder.glob("*.json")):
        for q in load_queries(path):
            for a in q.api_list:
                validate_name(a["category_name"], "category")
                validate_name(standardize(a["tool_name"]), "tool_name")
                validate_name(pure_api_name(a["api_name"]), "api_name")
    validate_name("👋 Demo Project", "tool_name")
    for bad in ("../x", "/detect", "a\\b", ".hidden", "a\x00b", "x" * 300, ""):
        with pytest.raises(BadRequest):
            validate_name(bad, "tool_name")


def test_oversized_body_gets_413_and_the_server_keeps_serving(client):
    r = client.post("/rapidapi", content=b"x" * TEN_MB, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/health").status_code == 200
    assert client.get("/stats").json()["bad_requests"] == 1


def test_upstream_answers_misses_and_real_answers_are_cached(tmp_path):
    seen = []

    def upstream(request):
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"error": "", "response": "real answer"})

    up = E.ToolClient(
        "http://upstream.test/rapidapi",
        SECRET,
        backoff=0.0,
        http_client=httpx.Client(transport=httpx.MockTransport(upstream)),
    )
    cache = ResponseCache(tmp_path / "c.sqlite")
    with TestClient(create_app(ServerConfig(cache=cache, upstream=up))) as c:
        payload = {
            "category": "Data",
            "tool_name": "Weather",
            "api_name": "Get weather",
            "tool_input": '{"city": "Paris"}',
            "toolbench_key": "",
        }
        for _ in range(2):
            r = c.post("/rapidapi", json=payload)
            assert r.json() == {"error": "", "response": "real answer"} and SECRET not in r.text
        assert len(seen) == 1 and seen[0]["toolbench_key"] == SECRET
        assert c.get("/stats").json()["by_source"] == {
            "local": 0,
            "cache": 1,
            "upstream": 1,
            "simulator": 0,
            "none": 0,
        }
    assert cache.get("weather", "get_weather", {"city": "Paris"}, "Data").source == "upstream"


# --- a real uvicorn process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(seeded_cache_file, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server_log") / "server.log"
    env = {**os.environ, E.KEY_ENV: SECRET}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toolbench_multillm.server",
                "--cache",
                str(seeded_cache_file),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("tool server did not start:\n" + log.read_text())
        time.sleep(0.1)
    yield url, proc, log
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
def test_live_server_replays_rejects_bad_requests_and_never_prints_the_key(live_server, answers_dir):
    url, proc, log = live_server
    tool_client = E.make_client("server", url=url + "/rapidapi", key=SECRET)
    assert replay(answers_dir, tool_client) >= 15
    with httpx.Client(base_url=url, timeout=30) as h:
        bad = [
            h.post("/rapidapi", content=b"{oops", headers={"content-type": "application/json"}),
            h.post("/rapidapi", json={"tool_name": "../x", "api_name": "y", "toolbench_key": SECRET}),
            h.post("/virtual", json={"tool_name": "unknown_tool", "api_name": "y", "toolbench_key": SECRET}),
            h.post("/rapidapi", content=b"x" * TEN_MB, headers={"content-type": "application/json"}),
        ]
        assert [r.status_code for r in bad] == [400, 400, 404, 413]
        assert all(SECRET not in r.text for r in bad)
        assert h.get("/health").json()["status"] == "ok"
        stats = h.get("/stats").json()
        assert stats["bad_requests"] == 3 and stats["hits"] >= 15
        ok = h.post(
            "/rapidapi", json={"tool_name": "transitaires", "api_name": "transitaires", "tool_input": "{}"}
        )
        assert ok.status_code == 200 and ok.json()["error"] == ""
    assert proc.poll() is None
    assert SECRET not in log.read_text()

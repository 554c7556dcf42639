"""The tool server, in-process (TestClient) and as a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import json
import logging
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
from toolbench_multillm.server import SOURCES, BadRequest, ServerConfig, create_app, validate_name
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
    assert stats["misses"] == 0 and stats["by_source"]["cache-real"] >= 15


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
        "source": "none",
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
        # deep nesting, in the body and in tool_input as an object or as JSON text
        (b"[" * 100_000, 400, "nested too deeply"),
        (
            b'{"tool_name": "t", "api_name": "a", "tool_input": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            400,
            "nested",
        ),
        (
            json.dumps(
                {"tool_name": "t", "api_name": "a", "tool_input": {"a": json.loads("[" * 32 + "]" * 32)}}
            ).encode(),
            400,
            "'tool_input' is nested deeper than 32",
        ),
        (
            json.dumps({"tool_name": "t", "api_name": "a", "tool_input": "[" * 5000 + "]" * 5000}).encode(),
            400,
            "'tool_input' is nested",
        ),
        # lone surrogates, escaped or as raw bytes, in every string field
        (rb'{"tool_name": "t\ud800", "api_name": "a"}', 400, "'tool_name' contains a lone surrogate"),
        (rb'{"tool_name": "t", "api_name": "\udfff"}', 400, "'api_name' contains a lone surrogate"),
        (
            b'{"tool_name": "t", "api_name": "a", "category": "\xed\xa0\x80"}',
            400,
            "'category' contains a lone surrogate",
        ),
        (
            rb'{"tool_name": "t", "api_name": "a", "tool_input": {"q": "\ud800"}}',
            400,
            "'tool_input' contains a lone surrogate",
        ),
        (
            rb'{"tool_name": "t", "api_name": "a", "tool_input": {"\ud800": 1}}',
            400,
            "'tool_input' contains a lone surrogate",
        ),
        (
            b'{"tool_name": "t", "api_name": "a", "tool_input": "{\\"q\\": \\"\\\\ud800\\"}"}',
            400,
            "'tool_input' contains a lone surrogate",
        ),
        (
            rb'{"tool_name": "t", "api_name": "a", "strip": "\ud800"}',
            400,
            "'strip' contains a lone surrogate",
        ),
        (
            rb'{"tool_name": "t", "api_name": "a", "toolbench_key": "k\udbff"}',
            400,
            "'toolbench_key' contains a lone surrogate",
        ),
        # integers past Python's 4,300-digit limit, in the body or in tool_input's text
        (
            b'{"tool_name": "t", "api_name": "a", "tool_input": {"n": 1' + b"0" * 5000 + b"}}",
            400,
            "too many digits",
        ),
        (
            json.dumps(
                {"tool_name": "t", "api_name": "a", "tool_input": '{"n": 1' + "0" * 5000 + "}"}
            ).encode(),
            400,
            "'tool_input' holds an integer with too many digits",
        ),
        # not an object, wrong field types, binary and empty bodies
        (b'"a string"', 400, "JSON object"),
        (b"null", 400, "JSON object"),
        (json.dumps({"tool_name": 5, "api_name": "a"}).encode(), 400, "'tool_name' must be a string"),
        (json.dumps({"tool_name": "t", "api_name": ["a"]}).encode(), 400, "'api_name' must be a string"),
        (
            json.dumps({"tool_name": "t", "api_name": "a", "category": {}}).encode(),
            400,
            "'category' must be a string",
        ),
        (json.dumps({"tool_name": "t", "api_name": "a", "tool_input": [1]}).encode(), 400, "tool_input"),
        (bytes(range(256)), 400, "invalid JSON"),
        (b"\xff\xfe\x00\xd8", 400, "invalid JSON"),
        (b"", 400, "invalid JSON"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(client, body, status, reason):
    r = client.post("/rapidapi", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and reason in r.json()["error"]
    assert r.json()["response"] == "" and "\n" not in r.json()["error"]
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
        for source in ("upstream", "cache-real"):
            r = c.post("/rapidapi", json=payload)
            assert r.json() == {"error": "", "response": "real answer", "source": source}
            assert SECRET not in r.text
        assert len(seen) == 1 and seen[0]["toolbench_key"] == SECRET
        assert c.get("/stats").json()["by_source"] == {
            "registered": 0,
            "cache-real": 1,
            "upstream": 1,
            "none": 0,
        }
    assert cache.get("weather", "get_weather", {"city": "Paris"}, "Data").source == "upstream"


def mock_upstream(
    handler, key: str | None = SECRET, url: str = "http://upstream.test/rapidapi"
) -> E.ToolClient:
    return E.ToolClient(
        url, key, max_retries=0, backoff=0.0, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_every_answer_names_its_source(seeded_cache_file, tmp_path):
    from toolbench_multillm.registry import ToolRegistry
    from toolbench_multillm.simulator import Simulator

    def llm(request):
        return httpx.Response(
            200, json={"choices": [{"message": {"content": '{"error": "", "response": "sim"}'}}]}
        )

    def upstream(request):
        if json.loads(request.content)["tool_name"] == "weather":
            return httpx.Response(200, json={"error": "", "response": "real"})
        return httpx.Response(404, json={"error": "no such API"})

    registry = ToolRegistry()
    registry.register("local_tool", "ping", lambda: "pong")
    path = tmp_path / "c.sqlite"
    path.write_bytes(seeded_cache_file.read_bytes())
    simulator = Simulator(
        "http://llm.test/v1", "m", http_client=httpx.Client(transport=httpx.MockTransport(llm))
    )
    config = ServerConfig(cache=ResponseCache(path), registry=registry, simulator=simulator)
    cases = [
        ({"tool_name": "local_tool", "api_name": "ping"}, 200, "registered"),
        ({"tool_name": "transitaires", "api_name": "transitaires", "tool_input": "{}"}, 200, "cache-real"),
        (
            {"tool_name": "transitaires", "api_name": "transitaire", "tool_input": {"is_id": "NEW"}},
            200,
            "simulated:project:m",
        ),
        ({"tool_name": "no_such_tool", "api_name": "a"}, 404, "none"),
    ]
    with TestClient(create_app(config)) as c:
        for body, status, source in cases:
            r = c.post("/virtual", json=body)
            assert (r.status_code, r.json()["source"]) == (status, source), body
        config.upstream, config.simulator = mock_upstream(upstream), None
        assert c.post("/rapidapi", json={"tool_name": "weather", "api_name": "now"}).json() == {
            "error": "",
            "response": "real",
            "source": "upstream",
        }
        none = c.post("/rapidapi", json={"tool_name": "other", "api_name": "now"}).json()
        assert none["source"] == "none" and none["error"].startswith("no cached response for other/now")
        assert "upstream failed: request invalid, data error. status_code=404: no such API" in none["error"]
        assert "source" not in c.post("/rapidapi", content=b"{").json()  # a refused request is no answer
        stats = c.get("/stats").json()
        assert stats["by_source"] == {s: 1 for s in SOURCES} | {"none": 2, "simulated:project:m": 1}
        assert stats["simulator"] is None  # switched off above


@pytest.mark.parametrize("server_key", [SECRET, None], ids=["server-key", "forwarded-request-key"])
def test_keys_echoed_by_the_upstream_are_never_answered_logged_or_cached(tmp_path, caplog, server_key):
    caplog.set_level(logging.DEBUG, logger="toolbench_multillm")
    request_key = "tb-request-key-999"

    def upstream(request):
        sent = json.loads(request.content)["toolbench_key"]
        api = json.loads(request.content)["api_name"]
        if api == "refused":
            return httpx.Response(
                401, text=f"invalid key {sent} (header {request.headers.get('toolbench_key')})"
            )
        if api == "crash":
            return httpx.Response(500, text=f"Traceback ... key={sent}")
        return httpx.Response(200, json={"error": f"key {sent} over quota", "response": f"echo {sent}"})

    cache = ResponseCache(tmp_path / "c.sqlite")
    up = mock_upstream(upstream, server_key, url="http://user:url-secret@upstream.test/rapidapi")
    with TestClient(create_app(ServerConfig(cache=cache, upstream=up))) as c:
        for api in ("refused", "crash", "quota"):
            r = c.post("/rapidapi", json={"tool_name": "t", "api_name": api, "toolbench_key": request_key})
            assert r.status_code == 200 and "***" in r.json()["error"], r.text
            for secret in (SECRET, request_key, "url-secret"):
                assert secret not in r.text
    for secret in (SECRET, request_key, "url-secret"):
        assert secret not in caplog.text
    assert "upstream.test" in caplog.text  # the failure is logged, with the URL's public part


def test_upstream_replies_deep_huge_or_of_the_wrong_type_are_served_as_text_or_reported(tmp_path):
    replies = {
        "deep": httpx.Response(
            200, content=b'{"error": "", "response": ' + b"[" * 20000 + b"]" * 20000 + b"}"
        ),
        "huge_int": httpx.Response(200, content=b'{"error": "", "response": 1' + b"0" * 5000 + b"}"),
        "not_json": httpx.Response(200, content=b"<html>"),
        "list": httpx.Response(200, json=[1, 2]),
        "types": httpx.Response(200, json={"error": {"code": 1}, "response": {"a": [1, None]}}),
        "surrogates": httpx.Response(200, content=b'{"error": "", "response": "a\\ud800b"}'),
        "huge": httpx.Response(200, json={"error": "", "response": "x" * 3000}),
    }
    up = mock_upstream(lambda request: replies[json.loads(request.content)["api_name"]])
    cache = ResponseCache(tmp_path / "c.sqlite")
    config = ServerConfig(cache=cache, upstream=up, max_response_chars=1000)
    with TestClient(create_app(config)) as c:
        answers = {api: c.post("/rapidapi", json={"tool_name": "t", "api_name": api}) for api in replies}
        assert all(r.status_code == 200 for r in answers.values())
        answers = {api: r.json() for api, r in answers.items()}
        for api in ("deep", "huge_int", "not_json", "list"):
            assert answers[api]["source"] == "none" and "upstream failed" in answers[api]["error"]
        assert answers["types"] == {  # an object response stays one (DESIGN §6); an error is text
            "error": '{"code": 1}',
            "response": {"a": [1, None]},
            "source": "upstream",
        }
        assert answers["surrogates"]["response"] == "a\ufffdb"
        assert answers["huge"]["response"] == "x" * 1000 + "..."
        assert c.get("/health").json()["status"] == "ok"
    assert cache.get("t", "surrogates", "{}").response == "a\ufffdb"
    assert cache.get("t", "huge", "{}").response == "x" * 1000 + "..."


@pytest.mark.parametrize("kind", ["folder", "not-sqlite", "missing-folder", "tool-root"])
def test_serve_tools_with_a_bad_path_fails_in_one_line_before_binding(tmp_path, capsys, monkeypatch, kind):
    from toolbench_multillm import server

    monkeypatch.setattr(server, "serve", lambda *a, **k: pytest.fail("serve() reached"))
    argv = ["--cache", str(tmp_path / "c.sqlite")]
    if kind == "folder":
        argv = ["--cache", str(tmp_path)]
    elif kind == "not-sqlite":
        (tmp_path / "notes.txt").write_text("hello, not a database")
        argv = ["--cache", str(tmp_path / "notes.txt")]
    elif kind == "missing-folder":
        argv = ["--cache", str(tmp_path / "nope" / "c.sqlite")]
    else:
        argv += ["--tool_root_dir", str(tmp_path / "no_tools")]
    assert server.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alpha-umi serve-tools: ") and "\n" not in err and "Traceback" not in err
    assert {"folder": str(tmp_path), "not-sqlite": "notes.txt", "missing-folder": "nope"}.get(
        kind, "no_tools"
    ) in err
    assert logging.getLogger("httpx").level >= logging.WARNING  # its INFO lines carry URL credentials


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


@pytest.mark.slow
def test_live_server_keeps_the_connection_open_through_hostile_requests(live_server):
    import http.client

    url, proc, log = live_server
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    bodies = [
        b"[" * 100_000,
        b'{"tool_name": "t", "api_name": "a", "tool_input": "' + b"[" * 5000 + b'"}',
        rb'{"tool_name": "t\ud800", "api_name": "a"}',
        rb'{"tool_name": "transitaires", "api_name": "transitaire", "tool_input": {"q": "\udfff"}}',
        b'{"tool_name": "t", "api_name": "a", "tool_input": {"n": 1' + b"0" * 5000 + b"}}",
        bytes(range(256)),
        b"x" * (2 << 20),
        json.dumps({"tool_name": "transitaires", "api_name": "transitaires", "tool_input": "{}"}).encode(),
    ]
    statuses, sock = [], None
    for body in bodies:
        conn.request("POST", "/rapidapi", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = json.loads(r.read())
        statuses.append(r.status)
        sock = sock or conn.sock
        assert conn.sock is sock and isinstance(data["error"], str), "connection dropped"
    assert statuses == [400] * 6 + [413, 200]
    conn.request("GET", "/health")
    assert json.loads(conn.getresponse().read())["status"] == "ok" and conn.sock is sock
    conn.close()
    assert proc.poll() is None and "Traceback" not in log.read_text()


def test_serve_tools_process_with_a_folder_as_cache_exits_2_without_a_traceback(tmp_path):
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "toolbench_multillm.server", "--cache", str(tmp_path), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert (
        run.stderr.strip().splitlines()[-1]
        == f"alpha-umi serve-tools: {tmp_path}: is a folder, expected an SQLite cache file"
    )


def test_a_defect_of_ours_is_a_500_with_a_redacted_log_and_the_server_keeps_serving(
    client, caplog, monkeypatch
):
    cache = client.app.state.config.cache
    calls = []

    def broken_get(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"bug while holding {SECRET}")
        return None

    monkeypatch.setattr(cache, "get", broken_get)
    r = client.post("/rapidapi", json={"tool_name": "t", "api_name": "a", "toolbench_key": SECRET})
    assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError", "response": ""}
    assert SECRET not in caplog.text and "bug while holding ***" in caplog.text
    assert client.post("/rapidapi", json={"tool_name": "t", "api_name": "a"}).status_code == 404
    assert client.get("/health").json()["status"] == "ok"

"""Bounded fuzzing of the tool server: hostile requests and hostile backends never get a 5xx.

A few hundred generated bodies (deep nesting, lone surrogates, huge integers, wrong types, binary and
oversized bodies) go through FastAPI's TestClient against the plain server and against one whose
local tool, upstream and simulator answer with hostile replies; a handful go over one keep-alive
connection to a real uvicorn server on 127.0.0.1. Every answer must be 2xx/4xx with string ``error``
and ``response``, no key may leak, and ``GET /health`` must stay ok. Seeded: the same requests each run.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from toolbench_multillm import env as E
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.registry import ToolRegistry
from toolbench_multillm.server import ServerConfig, create_app, is_source
from toolbench_multillm.simulator import Simulator

SECRET = "fuzz-server-key-314"
REQUEST_KEY = "fuzz-request-key-271"
LIMIT = 64 * 1024  # max_body_bytes of the fuzzed servers: oversized bodies stay cheap


def deep(n: int, kind: str = "[") -> str:
    return "[" * n + "]" * n if kind == "[" else '{"a":' * n + "1" + "}" * n


HUGE_INT = "1" + "0" * 5000
#: JSON texts (bytes) a field may hold; the first few are the sane ones.
NAMES = [b'"transitaires"', b'"transitaire"', b'"echo"', b'"weather"', b'"Logistics"']
HOSTILE = [
    b'""',
    b'"' + b"x" * 300 + b'"',
    b'"../etc/passwd"',
    b'"a\\\\b"',
    b'".hidden"',
    b'"\\ud800"',
    b'"a\\udfffb"',
    b'"\xed\xa0\x80"',  # a surrogate as raw (CESU-8) bytes
    b'"\\u0000"',
    b'"\\u2028"',
    b'"\xf0\x9f\x91\x8b Demo"',
    b"null",
    b"true",
    b"0",
    b"-1.5e308",
    b"1e999",
    b"NaN",
    b"-Infinity",
    HUGE_INT.encode(),
    b"[]",
    b"{}",
    b'[1, "a", null]',
    b'{"nested": {"x": [1, 2, {"y": "z"}]}}',
    deep(20).encode(),
    deep(40).encode(),
    deep(1200).encode(),
    deep(1200, "{").encode(),
    deep(20000).encode(),
]
TOOL_INPUTS = [
    b'"{}"',
    b'"{\\"is_id\\": \\"ACT_AGENCE_CALEDONIENNE_DE_TRANSIT\\"}"',
    b'{"is_id": "NEW"}',
    b'{"city": "Paris"}',
    b'"{oops"',
    b'"   "',
    json.dumps(deep(40)).encode(),
    json.dumps(deep(1200)).encode(),
    json.dumps(deep(20000, "{")).encode(),
    json.dumps('{"x": ' + HUGE_INT + "}").encode(),
    b'"{\\"x\\": \\"\\\\ud800\\"}"',  # JSON text whose value is a lone surrogate
    b'{"x": "\\udbff"}',
    b'{"\\ud800": 1}',
    b'{"x": NaN, "y": Infinity}',
    b'{"x": ' + HUGE_INT.encode() + b"}",
    b'{"n": 1' + b"0" * 4000 + b"}",  # just under the digit limit: a valid, huge input
]
FIELDS = ("category", "tool_name", "api_name", "tool_input", "strip", "toolbench_key")


def hostile_body(rng: random.Random) -> bytes:
    """One request body: mostly a ToolBench payload with some fields hostile, sometimes plain garbage."""
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(
            [
                b"",
                bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
                b"\xff\xfe{\x00}\x00",
                b'"a string"',
                b"[1, 2, 3]",
                b"null",
                HUGE_INT.encode(),
                deep(50000).encode(),
                b'{"tool_name": "transitaires", "api_name": ',  # cut short
            ]
        )
    if roll < 0.11:
        return b'{"tool_name": "t", "api_name": "a", "pad": "' + b"x" * (LIMIT + rng.randrange(10)) + b'"}'
    fields = {
        "tool_name": rng.choice(NAMES[:4]),
        "api_name": rng.choice(NAMES[:4]),
        "category": rng.choice([b'"Logistics"', b'""', b"null"]),
        "tool_input": rng.choice(TOOL_INPUTS[:4]),
        "toolbench_key": f'"{REQUEST_KEY}"'.encode(),
    }
    for name in rng.sample(FIELDS, rng.choice([1, 1, 2, 3])):
        pool = TOOL_INPUTS + HOSTILE if name == "tool_input" else HOSTILE + NAMES
        fields[name] = rng.choice(pool)
    if rng.random() < 0.1:
        del fields[rng.choice(list(fields))]
    if rng.random() < 0.1:
        fields["extra"] = rng.choice(HOSTILE)
    return b"{" + b", ".join(b'"%s": %s' % (k.encode(), v) for k, v in fields.items()) + b"}"


def upstream_reply(request: httpx.Request) -> httpx.Response:
    """A hostile upstream: the reply depends on the request, so the same request gets the same one; the
    key it was sent (the server's own, or the request's when the server has none) is echoed back."""
    key = json.loads(request.content).get("toolbench_key") or request.headers.get("toolbench_key")
    replies = [
        lambda: httpx.Response(200, content=b'{"error": "", "response": ' + deep(20000).encode() + b"}"),
        lambda: httpx.Response(200, content=b'{"error": "", "response": ' + deep(900).encode() + b"}"),
        lambda: httpx.Response(200, content=b'{"error": "", "response": ' + HUGE_INT.encode() + b"}"),
        lambda: httpx.Response(200, json={"error": "", "response": "x" * 200_000}),
        lambda: httpx.Response(200, content=b"<html>not json</html>"),
        lambda: httpx.Response(200, content=b"[1, 2]"),
        lambda: httpx.Response(200, json={"error": "only an error"}),
        lambda: httpx.Response(200, json={"error": {"a": [1]}, "response": 5}),
        lambda: httpx.Response(200, json={"error": None, "response": None}),
        lambda: httpx.Response(200, content=b'{"error": "\\ud800", "response": "a\\udfffb"}'),
        lambda: httpx.Response(200, content=b'{"error": "", "response": NaN}'),
        lambda: httpx.Response(200, json={"error": f"bad key {key}", "response": ""}),
        lambda: httpx.Response(200, json={"error": "", "response": f"echo {key}"}),
        lambda: httpx.Response(401, text=f"key {key} refused"),
        lambda: httpx.Response(500, json={"detail": f"boom {key}"}),
        lambda: httpx.Response(200, json={"error": "", "response": {"fine": ["value"]}}),
    ]
    return replies[sum(request.content) % len(replies)]()


def simulator_reply(request: httpx.Request) -> httpx.Response:
    contents = [
        deep(20000),
        '{"error": "", "response": ' + HUGE_INT + "}",
        '{"error": "", "response": "\\ud800"}',
        '{"error": "", "response": ' + deep(900, "{") + "}",
        '{"error": {"e": 1}, "response": [1, 2]}',
        "not json",
        '{"error": "", "response": "' + "y" * 100_000 + '"}',
    ]
    n = sum(request.content)
    if n % 9 == 7:
        return httpx.Response(200, content=deep(20000).encode())
    if n % 9 == 8:
        return httpx.Response(200, json={"choices": [{"message": {"content": ["not", "text"]}}]})
    return httpx.Response(200, json={"choices": [{"message": {"content": contents[n % len(contents)]}}]})


def hostile_config(cache_path, server_key: str | None = SECRET) -> ServerConfig:
    registry = ToolRegistry()
    registry.register("echo", "echo", lambda **kw: kw)
    registry.register("echo", "set", lambda **kw: {1, 2})  # a result with no JSON text
    registry.register("echo", "surrogate", lambda **kw: "bad \ud800 text")
    upstream = E.ToolClient(
        "http://user:pw-fuzz@upstream.test/rapidapi",
        server_key,
        max_retries=0,
        backoff=0.0,
        http_client=httpx.Client(transport=httpx.MockTransport(upstream_reply)),
    )
    simulator = Simulator(
        "http://llm.test/v1",
        "sim",
        api_key="sim-key-fuzz",
        max_retries=0,
        backoff=0.0,
        http_client=httpx.Client(transport=httpx.MockTransport(simulator_reply)),
    )
    return ServerConfig(
        cache=ResponseCache(cache_path),
        registry=registry,
        upstream=upstream,
        simulator=simulator,
        max_body_bytes=LIMIT,
        max_response_chars=50_000,
    )


def check_answer(status: int, text: str) -> None:
    assert status < 500, text[:300]
    assert SECRET not in text and REQUEST_KEY not in text and "pw-fuzz" not in text
    data = json.loads(text)
    # a response is text, or a JSON object or list served as one (DESIGN §6)
    assert isinstance(data["error"], str) and isinstance(data["response"], (str, dict, list))
    if status in (200, 404):
        assert is_source(data["source"]), data["source"]
    else:
        assert status in (400, 413) and data["error"] and data["response"] == ""


@pytest.fixture()
def cache_copy(seeded_cache_file, tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(seeded_cache_file.read_bytes())
    return path


@pytest.mark.parametrize("backends", ["cache only", "hostile backends", "hostile backends, forwarded key"])
def test_hostile_requests_never_get_a_5xx_and_the_server_stays_healthy(backends, cache_copy, caplog):
    caplog.set_level(logging.INFO)
    rng = random.Random(f"fuzz-{backends}")
    if backends == "cache only":
        config = ServerConfig(cache=ResponseCache(cache_copy), max_body_bytes=LIMIT)
    else:
        config = hostile_config(cache_copy, None if "forwarded" in backends else SECRET)
    n, statuses = 150, set()
    with TestClient(create_app(config)) as c:
        for _ in range(n):
            path = rng.choice(["/rapidapi", "/virtual"])
            r = c.post(path, content=hostile_body(rng), headers={"content-type": "application/json"})
            check_answer(r.status_code, r.text)
            statuses.add(r.status_code)
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert c.get("/stats").json()["requests"] == n
    assert {200, 400, 413} <= statuses
    # httpx logs each request's URL as given (credentials included); serve-tools quiets it (see test_server)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    for secret in (SECRET, REQUEST_KEY, "pw-fuzz", "sim-key-fuzz"):
        assert secret not in ours


def test_hostile_backend_replies_are_served_as_text_or_reported(cache_copy):
    """Each hostile upstream reply, then each hostile simulator reply, answered 200 with a clear error
    or the value; nothing hostile is cached verbatim and the cache keeps answering."""
    config = hostile_config(cache_copy)
    seen_sources = set()
    with TestClient(create_app(config)) as c:
        for i in range(48):
            body = {"tool_name": "transitaires", "api_name": "transitaire", "tool_input": {"i": i}}
            r = c.post("/rapidapi", json={**body, "toolbench_key": REQUEST_KEY})
            check_answer(r.status_code, r.text)
            assert r.status_code == 200
            data = r.json()
            seen_sources.add(data["source"])
            resp = data["response"]
            shown = resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
            assert len(shown) <= config.max_response_chars + 3
            if data["source"] == "none":
                assert data["error"].startswith("no cached response for transitaires/transitaire")
        for api in ("echo", "set", "surrogate"):
            r = c.post("/virtual", json={"tool_name": "echo", "api_name": api, "tool_input": {"a": "é"}})
            check_answer(r.status_code, r.text)
            assert r.json()["source"] == "registered"
        assert (
            "not JSON-serialisable" in c.post("/virtual", json={"tool_name": "echo", "api_name": "set"}).text
        )
        assert c.get("/health").json()["status"] == "ok"
    assert {"upstream", "simulated:project:sim", "none"} <= seen_sources
    cache = ResponseCache(cache_copy)
    for _, tool, api, inp in cache.keys():
        hit = cache.get(tool, api, inp)
        text = hit.response if isinstance(hit.response, str) else json.dumps(hit.response, ensure_ascii=False)
        assert hit is not None and "\ud800" not in text and SECRET not in hit.error + text


# --- a real uvicorn server, one keep-alive connection ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def uvicorn_server(cache_copy):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(hostile_config(cache_copy)), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def test_hostile_requests_over_one_keep_alive_connection_to_uvicorn(uvicorn_server):
    rng = random.Random("keep-alive")
    conn = http.client.HTTPConnection("127.0.0.1", uvicorn_server, timeout=30)
    bodies = [hostile_body(rng) for _ in range(40)]
    bodies += [
        deep(50000).encode(),
        b"\xff" * 100,
        b"x" * (LIMIT + 1),
        b'{"tool_name": "\\ud800", "api_name": "a"}',
    ]
    sock = None
    for body in bodies:
        conn.request("POST", "/rapidapi", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read().decode()
        check_answer(r.status, text)
        assert (r.getheader("connection") or "").lower() != "close"
        sock = sock or conn.sock
        assert conn.sock is sock, "the server dropped the keep-alive connection"
    conn.request("GET", "/health")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["status"] == "ok" and conn.sock is sock
    conn.close()

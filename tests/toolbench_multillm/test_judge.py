"""The ToolEval judge client against a scripted OpenAI-compatible server on 127.0.0.1.

``FakeJudgeServer`` is also used by test_tooleval.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from glpft.chat import EndpointUnavailable
from glpft.formats import FormatError
from toolbench_multillm.judge import (
    SOLVED,
    UNSOLVED,
    UNSURE,
    Judge,
    JudgeConfig,
    JudgeUnavailable,
    load_api_keys,
    parse_json_reply,
    parse_pass_reply,
    parse_preference_reply,
    pass_messages,
    preference_messages,
    render_answer,
)


def reply(content: str | None) -> tuple[int, dict]:
    """A 200 chat-completions body carrying ``content``."""
    return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def pass_reply(label: str, reason: str = "scripted") -> tuple[int, dict]:
    return reply(json.dumps({"reason": reason, "answer_status": label}))


class FakeJudgeServer:
    """Answers POST /v1/chat/completions: first from ``script`` (one entry per request), then ``respond``.

    A script entry is ``(status, body)``, ``("sleep", seconds)`` (answers late; the client times out) or
    ``(status, text)`` with a str body. ``respond(request_json) -> (status, body)`` handles the rest.
    """

    def __init__(self, respond=None, script=None):
        self.respond = respond or (lambda req: pass_reply(SOLVED))
        self.script = list(script or [])
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    step = server.script.pop(0) if server.script else None
                if step is None:
                    status, payload = server.respond(body)
                elif step[0] == "sleep":
                    time.sleep(step[1])
                    status, payload = pass_reply(SOLVED)
                else:
                    status, payload = step
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeJudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def calls(self) -> int:
        return len(self.requests)


def fast_config(base_url: str, **kw) -> JudgeConfig:
    kw = {"timeout": 0.5, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05, **kw}
    return JudgeConfig(base_url=base_url, model="judge-test", **kw)


ANSWER = {
    "method": "DFS_woFilter_w2",
    "total_steps": 4,
    "final_answer": json.dumps({"return_type": "give_answer", "final_answer": "It is 21 degrees in Paris."}),
    "answer_details": [
        {
            "role": "system",
            "message": "",
            "next": [
                {
                    "role": "user",
                    "message": "",
                    "next": [
                        {
                            "role": "tool",
                            "message": {
                                "name": "weather_for_w",
                                "arguments": '{"city": "Paris"}',
                                "response": "x" * 50,
                            },
                            "next": [
                                {
                                    "role": "tool",
                                    "message": {"name": "Finish", "arguments": "{}", "response": ""},
                                    "next": [],
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    ],
}


def test_solved_label_is_parsed_and_prompt_carries_query_and_answer():
    with (
        FakeJudgeServer(script=[pass_reply(UNSOLVED, "wrong city")]) as srv,
        Judge(fast_config(srv.base_url)) as j,
    ):
        v = j.judge_solved("Weather in Paris?", ANSWER)
    assert (v.label, v.reason, v.malformed) == (UNSOLVED, "wrong city", False)
    req = srv.requests[0]
    assert req["model"] == "judge-test"
    user = req["messages"][1]["content"]
    assert "Weather in Paris?" in user and "It is 21 degrees in Paris." in user and "weather_for_w" in user


def test_429_and_5xx_are_retried_with_backoff_then_succeed():
    script = [(429, {"error": "slow down"}), (503, "unavailable"), (500, {}), pass_reply(SOLVED)]
    with FakeJudgeServer(script=script) as srv, Judge(fast_config(srv.base_url)) as j:
        v = j.judge_solved("q", ANSWER)
    assert v.label == SOLVED and srv.calls == 4 and j.requests == 4


def test_timeout_is_retried():
    with FakeJudgeServer(script=[("sleep", 1.0), pass_reply(UNSOLVED)]) as srv:
        with Judge(fast_config(srv.base_url, timeout=0.3)) as j:
            v = j.judge_solved("q", ANSWER)
    assert v.label == UNSOLVED and srv.calls == 2


def test_malformed_replies_are_reasked_then_counted_unsure():
    script = [reply("I think it is solved"), reply('{"answer_status": "Maybe"}'), (200, "not json at all")]
    with FakeJudgeServer(script=script) as srv, Judge(fast_config(srv.base_url, parse_retries=2)) as j:
        v = j.judge_solved("q", ANSWER)
        assert (v.label, v.malformed) == (UNSURE, True)
        assert srv.calls == 3 and j.malformed == 1
        v2 = j.judge_solved("q", ANSWER)  # the script is used up: the default responder says Solved
    assert (v2.label, v2.malformed) == (SOLVED, False)


def test_null_content_and_missing_choices_count_as_malformed():
    script = [reply(None), (200, {"choices": []}), (200, {"object": "chat.completion"})]
    with FakeJudgeServer(script=script) as srv, Judge(fast_config(srv.base_url, parse_retries=2)) as j:
        v = j.judge_preference("q", ANSWER, ANSWER)
    assert (v.label, v.malformed) == ("tie", True) and srv.calls == 3


def test_persistent_failure_raises_judge_unavailable_after_retries():
    with FakeJudgeServer(respond=lambda req: (502, "bad gateway")) as srv:
        with (
            Judge(fast_config(srv.base_url, max_retries=2)) as j,
            pytest.raises(JudgeUnavailable, match="3 times"),
        ):
            j.judge_solved("q", ANSWER)
    assert srv.calls == 3


def test_refused_request_is_not_retried_and_key_is_redacted():
    secret = "sk-test-SECRET-1234567890"
    echo = (401, {"error": {"message": f"Incorrect API key provided: {secret}"}})
    with FakeJudgeServer(respond=lambda req: echo) as srv:
        with Judge(fast_config(srv.base_url, api_keys=[secret])) as j, pytest.raises(JudgeUnavailable) as err:
            j.judge_solved("q", ANSWER)
    assert srv.calls == 1 and secret not in str(err.value) and "401" in str(err.value)


def test_judge_unavailable_is_an_endpoint_error_without_url_credentials():
    with FakeJudgeServer(respond=lambda req: (404, "no such model")) as srv:
        url = srv.base_url.replace("http://", "http://judge-user:pw-SECRET-42@")
        with Judge(fast_config(url)) as j, pytest.raises(JudgeUnavailable) as err:
            j.complete([{"role": "user", "content": "hi"}])
    assert isinstance(err.value, EndpointUnavailable) and j.requests == 1
    assert "pw-SECRET-42" not in str(err.value) and "judge-user" not in str(err.value)
    assert srv.base_url in str(err.value) and "404" in str(err.value)


def test_key_pool_file_rotates_keys(tmp_path, monkeypatch):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"username": "u", "api_key": "sk-one"}, {"api_key": "sk-two"}]))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    keys = load_api_keys(str(pool))
    assert keys == ["sk-one", "sk-two"]
    with FakeJudgeServer() as srv, Judge(fast_config(srv.base_url, api_keys=keys)) as j:
        for _ in range(3):
            j.judge_solved("q", ANSWER)
    assert [h["Authorization"] for h in srv.headers] == ["Bearer sk-one", "Bearer sk-two", "Bearer sk-one"]


def test_keys_from_environment_or_none(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert load_api_keys(None) == ["sk-env"]
    monkeypatch.delenv("OPENAI_API_KEY")
    assert load_api_keys(None) == []
    with FakeJudgeServer() as srv, Judge(fast_config(srv.base_url)) as j:
        j.judge_solved("q", ANSWER)
    assert "Authorization" not in srv.headers[0]


def test_json_mode_and_temperature_are_sent_only_when_asked():
    with FakeJudgeServer() as srv:
        with Judge(fast_config(srv.base_url)) as j:
            j.judge_solved("q", ANSWER)
        with Judge(fast_config(srv.base_url, json_mode=True, temperature=0.0)) as j:
            j.judge_solved("q", ANSWER)
    assert "response_format" not in srv.requests[0] and "temperature" not in srv.requests[0]
    assert (
        srv.requests[1]["response_format"] == {"type": "json_object"}
        and srv.requests[1]["temperature"] == 0.0
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"reason": "ok", "answer_status": "Solved"}', (SOLVED, "ok")),
        ('```json\n{"answer_status": "unsolved", "reason": "r"}\n```', (UNSOLVED, "r")),
        ('Sure! {"Answer_Status": "Unsure."} hope this helps', (UNSURE, "")),
        ('{"broken": } then {"answer_status": "Solved"}', (SOLVED, "")),
        ("Solved", None),
        ('{"answer_status": ["Solved"]}', None),
        ("", None),
        (None, None),
    ],
)
def test_pass_reply_parsing(text, expected):
    assert parse_pass_reply(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{" * 400_000, None),
        ("{" * 400_000 + '{"answer_status": "Solved"}', {"answer_status": "Solved"}),
        ('{"' * 200_000, None),
        ('{"":}' * 80_000, None),
        ('{"a": ' * 70_000, None),  # nested past the recursion limit: used to raise RecursionError
        ('{"a": "' + "{" * 400_000, None),
        (
            '{"reason": "' + "x" * 400_000 + '", "answer_status": "Solved"}',
            {"reason": "x" * 400_000, "answer_status": "Solved"},
        ),
        ('{"answer_status": ' * 5000 + '"Solved"' + "}" * 5000, None),  # nested 5,000 deep
        ('{"a": ' + "1" * 400_000, None),  # used to raise: more than 4300 digits
        ('{"a": ' + "1" * 5000 + '} {"answer_status": "Solved"}', {"answer_status": "Solved"}),
    ],
    ids=[
        "braces",
        "braces-then-object",
        "brace-quotes",
        "empty-values",
        "nested",
        "unterminated",
        "long",
        "nested-5000",
        "huge-integer",
        "huge-integer-then-object",
    ],
)
def test_long_replies_full_of_braces_parse_in_linear_time(text, expected):
    start = time.perf_counter()
    got = parse_json_reply(text)
    assert time.perf_counter() - start < 0.5
    assert got == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"result": {"reason": "r", "answer_status": "Solved"}', {"reason": "r", "answer_status": "Solved"}),
        ('{"a": "{}', {}),
        ("{" + '"k": true, ' * 40 + '"v": -Infinity, "u": "\\u00e9"}', None),
    ],
    ids=["object-inside-a-cut-one", "object-inside-a-string", "longer-than-a-window"],
)
def test_first_object_is_found_wherever_it_starts(text, expected):
    want = expected if expected is not None else json.loads(text)
    assert parse_json_reply(text) == want


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"preferred": "A", "reason": "x"}', "A"),
        ('{"preferred": "answer b"}', "B"),
        ('{"preferred": 2}', "B"),
        ('{"preferred": "both"}', None),
        ("A", None),
    ],
)
def test_preference_reply_parsing(text, expected):
    got = parse_preference_reply(text)
    assert (got[0] if got else None) == expected


def test_rendered_answer_cuts_long_tool_responses():
    text = render_answer(ANSWER, max_response_chars=10)
    assert "x" * 10 + " …(cut)" in text and "x" * 11 not in text
    assert text.splitlines()[-1] == "Final answer: It is 21 degrees in Paris."


def test_a_reason_that_is_not_text_is_shown_as_json_without_raising():
    deep = '{"answer_status": "Solved", "reason": ' + "[" * 900 + "]" * 900 + "}"
    label, reason = parse_pass_reply(deep)
    assert label == SOLVED and reason.startswith("[[[") and len(reason) <= 500
    assert parse_preference_reply('{"preferred": "B", "reason": {"why": 1}}') == ("B", '{"why": 1}')


def test_messages_with_a_lone_surrogate_can_be_sent():
    answer = json.loads(json.dumps(ANSWER).replace("21 degrees", "21 degrees \\ud83d"))
    for messages in (pass_messages("q \ud83d", answer), preference_messages("q", answer, ANSWER)):
        user = messages[1]["content"]
        user.encode("utf-8")  # would raise UnicodeEncodeError if a surrogate were left
        assert "\ufffd" in user


@pytest.mark.parametrize(
    "content, named",
    [
        ('[{"api_key": "sk-abc"', "not valid JSON"),
        ("", "not valid JSON"),
        ('"sk-abc-SECRET"', "expected a JSON list or a JSON object"),
        ('{"api_keys": "sk-abc-SECRET"}', "field 'api_keys'"),
        ('[{"api_key": 5}, "sk-abc-SECRET"]', "record 0"),
        ("[]", "no 'api_key' entries"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (None, "no such file"),
    ],
)
def test_a_bad_key_pool_file_is_a_one_line_error_without_keys(tmp_path, content, named):
    pool = tmp_path / "pool.json"
    if content is not None:
        pool.write_text(content)
    with pytest.raises(FormatError, match=re.escape(named)) as err:
        load_api_keys(str(pool))
    assert str(pool) in str(err.value) and "SECRET" not in str(err.value) and "\n" not in str(err.value)

"""The tool environment (DESIGN §4.2): Finish handling, exact names, truncation, status codes, retries."""

from __future__ import annotations

import copy
import json
import logging
import time

import httpx
import pytest

from toolbench_multillm import env as E
from toolbench_multillm.tools import build_toolset

SECRET = "tb-secret-key-123"

QUERY = {
    "query": "q",
    "api_list": [
        {
            "category_name": "Data",
            "tool_name": "Weather",
            "api_name": "Get weather",
            "api_description": "weather",
        },
        {
            "category_name": "Data",
            "tool_name": "Weather",
            "api_name": "Get forecast",
            "api_description": "forecast",
        },
    ],
}


def make_env(
    handler, observation_format="alpha_umi", max_observation_length=1024, retries=3, key=None, url=None
):
    http = httpx.Client(transport=httpx.MockTransport(handler))
    # a fresh URL per test gets its own (unlimited) per-process rate limiter
    client = E.ToolClient(
        url or f"http://tools.test/{time.monotonic_ns()}",
        key,
        max_retries=retries,
        backoff=0.0,
        http_client=http,
    )
    return E.ToolEnv(
        build_toolset(QUERY), client, max_observation_length, observation_format=observation_format
    )


def answer(error="", response="ok"):
    return lambda request: httpx.Response(200, json={"error": error, "response": response})


def test_finish_with_answer_sets_success_and_final_answer():
    env = make_env(answer())
    obs, code = env.step("Finish", json.dumps({"return_type": "give_answer", "final_answer": "42"}))
    assert (obs, code) == ('{"response":"successfully giving the final answer."}', E.FINAL_ANSWER)
    assert env.check_success() == 1 and env.final_answer == "42"


def test_finish_give_up_and_bad_arguments():
    env = make_env(answer())
    assert env.step("Finish", '{"return_type": "give_up_and_restart"}')[1] == E.GAVE_UP
    assert env.step("Finish", "{}")[1] == E.BAD_INPUT
    assert env.step("Finish", '{"return_type": "give_answer"}')[1] == E.BAD_INPUT
    assert env.success == 0


def test_finish_with_invalid_return_type_answers_bad_input_instead_of_nothing():
    """fixes: the original returned None for an unknown return_type."""
    obs, code = make_env(answer()).step("Finish", '{"return_type": "maybe"}')
    assert code == E.BAD_INPUT and "not a valid choice" in obs


def test_finish_arguments_that_are_not_json_fall_back_to_substring_search():
    env = make_env(answer())
    obs, code = env.step("Finish", '{"return_type": "give_answer", "final_answer": "broken "quote"}')
    assert code == E.FINAL_ANSWER and env.final_answer.startswith("broken")
    assert make_env(answer()).step("Finish", '{"return_type": "give_up_and_restart", oops')[1] == E.GAVE_UP


def test_partial_or_empty_action_name_is_a_hallucination_not_an_endswith_match():
    """fixes: the original matched ``name.endswith(action)``: "" or "weather" called get_weather_for_weather."""
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(200, json={"error": "", "response": "x"})

    env = make_env(handler)
    for action in ("", "weather", "for_weather", "get_weather_for_weather_x"):
        obs, code = env.step(action, "{}")
        assert code == E.NO_SUCH_FUNCTION and "No such function name" in obs
    assert calls == []
    assert env.step("get_weather_for_weather", "{}")[1] == E.OK and len(calls) == 1


def test_payload_carries_standard_names_input_strip_and_key():
    seen = {}

    def handler(request):
        seen["body"] = json.loads(request.content)
        seen["header"] = request.headers.get("toolbench_key")
        return httpx.Response(200, json={"error": "", "response": "sunny"})

    env = make_env(handler, key=SECRET)
    assert env.step("get_forecast_for_weather", '{"city": "Paris"}') == ('"sunny"', E.OK)
    assert seen["body"] == {
        "category": "Data",
        "tool_name": "weather",
        "api_name": "get_forecast",
        "tool_input": '{"city": "Paris"}',
        "strip": "truncate",
        "toolbench_key": SECRET,
    }
    assert seen["header"] == SECRET


def test_observation_formats_and_truncation():
    long = "y" * 2000
    obs, _ = make_env(answer(response=long)).step("get_weather_for_weather", "{}")
    assert obs == json.dumps(long)[:1024] + "..."
    obs, _ = make_env(answer(response="r"), "toolbench").step("get_weather_for_weather", "{}")
    assert obs == '{"error": "", "response": "r"}'
    obs, _ = make_env(answer(response="{'a': 1}"), "training").step("get_weather_for_weather", "{}")
    assert obs == "{'a': 1}"  # the bare response, as preprocessing builds observation turns
    obs, code = make_env(answer(error="Message error...", response="")).step("get_weather_for_weather", "{}")
    assert (obs, code) == ('{"message": "Message error..."}', E.ERROR_FIELD)
    obs, _ = make_env(answer(response="z" * 50), max_observation_length=10).step(
        "get_weather_for_weather", "{}"
    )
    assert obs == '"zzzzzzzzz...'


@pytest.mark.parametrize(
    "error, status",
    [
        ("", E.OK),
        ("API not working error...", E.NOT_FOUND),
        ("Unsubscribed error...", E.NOT_SUBSCRIBED),
        ("Unauthorized error...", E.UNAUTHORIZED),
        ("Too many requests error...", E.TOO_MANY_REQUESTS),
        ("Message error...", E.ERROR_FIELD),
        ("Timeout error...read timed out", E.TIMEOUT),
        ("something else", E.ERROR_FIELD),
    ],
)
def test_service_error_strings_map_to_status_codes(error, status):
    assert make_env(answer(error=error)).step("get_weather_for_weather", "{}")[1] == status


def test_rate_limit_error_holds_later_calls_back():
    env = make_env(answer(error="Rate limit per minute error..."))
    assert env.step("get_weather_for_weather", "{}")[1] == E.RATE_LIMITED
    assert env.client.limiter._next > time.monotonic() + 5


def test_retries_429_and_5xx_then_succeeds():
    replies = iter([429, 503, 200])

    def handler(request):
        code = next(replies)
        return httpx.Response(
            code, json={"error": "", "response": "done"} if code == 200 else {"detail": "busy"}
        )

    assert make_env(handler).step("get_weather_for_weather", "{}") == ('"done"', E.OK)


def test_gives_up_after_retries_with_request_failed_or_not_found():
    env = make_env(lambda r: httpx.Response(500, text="boom"), retries=2)
    env.on_backend_error = "observe"  # the original's behaviour: the failure becomes the observation
    obs, code = env.step("get_weather_for_weather", "{}")
    assert code == E.REQUEST_FAILED and "status_code=500" in obs
    obs, code = make_env(lambda r: httpx.Response(404, json={"error": "unknown tool"})).step(
        "get_weather_for_weather", "{}"
    )
    assert code == E.NOT_FOUND and "unknown tool" in obs
    not_json = make_env(lambda r: httpx.Response(200, text="not json"))
    not_json.on_backend_error = "observe"
    assert not_json.step("get_weather_for_weather", "{}")[1] == E.REQUEST_FAILED


@pytest.mark.parametrize(
    "handler, status",
    [
        (lambda r: httpx.Response(500, text="boom"), E.REQUEST_FAILED),
        (lambda r: httpx.Response(429, json={}), E.TOO_MANY_REQUESTS),
        (lambda r: httpx.Response(401, json={"error": "bad key"}), E.REQUEST_FAILED),
        (lambda r: httpx.Response(200, text="not json"), E.REQUEST_FAILED),
        (lambda r: httpx.Response(200, text="[" * 100000), E.REQUEST_FAILED),  # too deep to parse
        (lambda r: httpx.Response(200, json={"no": "response"}), E.REQUEST_FAILED),
    ],
)
def test_a_failing_backend_stops_the_query_instead_of_becoming_an_observation(handler, status):
    env = make_env(handler, retries=1)
    with pytest.raises(E.ToolBackendError) as err:
        env.step("get_weather_for_weather", "{}")
    assert err.value.status == status and env.last_source == "error"


def test_a_4xx_about_the_call_itself_is_an_observation_not_a_backend_failure():
    obs, code = make_env(lambda r: httpx.Response(400, json={"error": "field 'tool_input'"})).step(
        "get_weather_for_weather", "{}"
    )
    assert code == E.REQUEST_FAILED and "tool_input" in obs


def test_timeout_and_connection_errors():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    slow = make_env(timeout, retries=0)
    slow.on_backend_error = "observe"
    assert slow.step("get_weather_for_weather", "{}") == (
        json.dumps({"error": "request time out", "response": ""}),
        E.TIMEOUT,
    )
    down = make_env(refused, retries=1)
    down.on_backend_error = "observe"
    assert down.step("get_weather_for_weather", "{}")[1] == E.REQUEST_FAILED
    with pytest.raises(E.ToolBackendError, match="request failed: ConnectError"):
        make_env(refused, retries=1).step("get_weather_for_weather", "{}")


def test_rate_limiter_spaces_calls_per_process():
    limiter = E.RateLimiter(per_minute=60 * 20)  # one call per 50 ms
    start = time.monotonic()
    for _ in range(4):
        limiter.wait()
    assert time.monotonic() - start >= 0.14
    assert E.process_rate_limiter("http://a.test/x", 10) is E.process_rate_limiter("http://a.test/x", 99)


def test_deepcopy_shares_the_client_and_copies_the_state():
    env = make_env(answer())
    clone = copy.deepcopy(env)
    assert clone.client is env.client and clone.toolset is env.toolset
    clone.step("Finish", '{"return_type": "give_answer", "final_answer": "a"}')
    assert clone.success == 1 and env.success == 0


def test_key_comes_from_flag_or_environment_and_is_never_shown(monkeypatch, caplog):
    monkeypatch.delenv(E.KEY_ENV, raising=False)
    with pytest.raises(ValueError, match="needs a key"):
        E.make_client("toolbench")
    monkeypatch.setenv(E.KEY_ENV, SECRET)
    client = E.make_client("toolbench")
    assert client.has_key and client.url == E.DEFAULT_TOOLBENCH_URL and client.limiter.interval == 2.0
    assert SECRET not in repr(client) and SECRET not in repr(E.make_client("server", key="other"))
    with caplog.at_level(logging.DEBUG):
        env = make_env(lambda r: httpx.Response(503, text=f"bad key {SECRET}"), key=SECRET, retries=1)
        with pytest.raises(E.ToolBackendError) as err:
            env.step("get_weather_for_weather", "{}")
        env.on_backend_error = "observe"
        obs, _ = env.step("get_weather_for_weather", "{}")
    assert SECRET not in caplog.text and SECRET not in obs and SECRET not in str(err.value)


def test_env_args_parse_with_paper_defaults():
    import argparse

    parser = argparse.ArgumentParser()
    E.add_env_args(parser)
    args = parser.parse_args(["--backend", "server", "--service_url", "http://127.0.0.1:9/rapidapi"])
    assert args.max_observation_length == 1024 and args.observ_compress_method == "truncate"
    client = E.client_from_args(args)
    env = E.env_from_args(build_toolset(QUERY), client, args)
    assert env.observation_format == "alpha_umi" and client.url.endswith(":9/rapidapi")

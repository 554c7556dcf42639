"""serve-agent: α-UMi behind OpenAI chat completions with tools, driven by the official ``openai`` client."""

from __future__ import annotations

import json
import socket
import threading
import time

import openai
import pytest

from glpft import prompts as P
from toolbench_multillm.agent_server import conversation_of, create_app
from toolbench_multillm.agents import AlphaUmiAgent

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather_for_weather",
        "description": "Get the weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "city"}}},
    },
}
ENTRIES = [P.tool_entry(WEATHER["function"], "tools[0]")]


class Replay:
    def __init__(self, outputs=()):
        self.outputs, self.prompts = list(outputs), []

    def generate(self, prompts):
        self.prompts += prompts
        return [self.outputs.pop(0) if self.outputs else "" for _ in prompts]


class Server:
    """The app on a real uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="x", max_retries=0)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_a_tool_loop_through_the_openai_client_builds_the_real_time_prompts():
    planner = Replay(["I call it. Next: caller.", "Done. Next: conclusion."])
    caller = Replay(['Action: get_weather_for_weather\nAction Input: {"city": "Paris"}'])
    summarizer = Replay(["It is 21 degrees."])
    with Server(create_app(AlphaUmiAgent(planner, caller, summarizer))) as client:
        messages = [
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "Weather in Paris?"},
        ]
        first = client.chat.completions.create(model="alpha-umi", messages=messages, tools=[WEATHER])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather_for_weather",
            {"city": "Paris"},
        )
        messages.append(choice.message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp": 21})})
        second = client.chat.completions.create(model="alpha-umi", messages=messages, tools=[WEATHER])
        assert second.choices[0].finish_reason == "stop"
        assert second.choices[0].message.content == "It is 21 degrees."
        assert [m.id for m in client.models.list().data] == ["alpha-umi"]
    # the prompts are the real-time agent's for the same conversation (observation encoded once)
    history = "user: Weather in Paris?</s>"
    assert planner.prompts[0] == P.planner_prompt(ENTRIES, history)
    assert caller.prompts[0] == P.caller_prompt(ENTRIES, history, "I call it. Next: caller.")
    history += (
        'assistant: I call it. Next: caller.</s>caller: Action: get_weather_for_weather\nAction Input: {"city": "Paris"}</s>'
        'observation: {"temp": 21}'
    )
    assert planner.prompts[1] == P.planner_prompt(ENTRIES, history)
    assert summarizer.prompts[0] == P.summarizer_prompt(ENTRIES, history, "Done. Next: conclusion.")


def test_give_up_is_content_with_the_marker_and_bad_requests_are_400():
    agent = AlphaUmiAgent(Replay(["No tool fits. Next: give up."]), Replay(), Replay())
    with Server(create_app(agent)) as client:
        reply = client.chat.completions.create(
            model="alpha-umi", messages=[{"role": "user", "content": "q"}], tools=[WEATHER]
        )
        assert reply.choices[0].message.content.endswith("Next: give up.")
        assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
        for bad in (
            {"messages": [{"role": "user", "content": "q"}], "tools": []},
            {"messages": [], "tools": [WEATHER]},
            {"messages": [{"role": "assistant", "content": "x"}], "tools": [WEATHER]},
        ):
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="alpha-umi", **bad)


def test_messages_map_onto_the_alpha_umi_conversation():
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "look it up", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c", "content": "plain text"},
        {"role": "user", "content": "and tomorrow?"},
    ]  # fmt: skip
    query, steps, trailing = conversation_of(messages)
    assert query == "q" and len(steps) == 1
    assert steps[0].action.turns == [
        {"from": "assistant", "value": "look it up " + P.NEXT_CALLER},  # marker-less thought: real-time rule
        {"from": "caller", "value": 'Action: f\nAction Input: {"a": 1}'},
    ]
    assert steps[0].observation == '"plain text"'  # a string result, JSON-encoded once
    assert trailing == [{"from": "user", "value": "and tomorrow?"}]

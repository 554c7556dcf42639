"""Bounded fuzzing: adversarial model, endpoint and tool replies never crash a run or an answer file."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from search_fakes import FakeEnv

from glpft import parsing
from glpft.formats import write_json_atomic
from glpft.prompts import observation_text
from toolbench_multillm.agents import AgentError, AlphaUmiAgent, BackboneAgent, OpenAIAgent, Task
from toolbench_multillm.search import Limits, search

TASK = Task(
    "q", [{"name": "get_weather_for_weather", "parameters": {"type": "object"}}, {"name": "Finish"}], []
)

SURROGATE = "\ud800"
ATOMS = [None, True, 0, -1, 1.5, 10**30, "", "x", SURROGATE, "Finish", "get_weather_for_weather", [], {}]


def value(rng: random.Random, depth: int = 0):
    """A random JSON-ish value: atoms, lists and objects with the keys chat replies use."""
    kind = rng.random()
    if depth > 4 or kind < 0.4:
        return rng.choice(ATOMS)
    if kind < 0.6:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["choices", "message", "content", "tool_calls", "function", "name", "arguments", "usage",
            "total_tokens", "function_call", "role", SURROGATE]  # fmt: skip
    return {rng.choice(keys): value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def reply(rng: random.Random):
    """A chat-completions body, mostly well-formed at the top, with random parts."""
    message = value(rng)
    if rng.random() < 0.7:
        message = {"role": "assistant", "content": value(rng), "tool_calls": value(rng)}
        if rng.random() < 0.5:
            message["tool_calls"] = [{"function": {"name": value(rng), "arguments": value(rng)}}]
    body = {"choices": [{"message": message}], "usage": value(rng)}
    return body if rng.random() < 0.9 else value(rng)


def test_openai_agent_turns_any_reply_shape_into_an_action_or_an_agent_error_fixes_crashes(tmp_path):
    rng = random.Random(0)
    bodies = iter([reply(rng) for _ in range(1500)])

    def handler(request):
        body = next(bodies)
        try:
            return httpx.Response(200, content=json.dumps(body).encode())
        except (ValueError, TypeError):
            return httpx.Response(200, content=b"not json")

    agent = OpenAIAgent(
        "http://llm.test/v1", "m", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    outcomes = {"action": 0, "error": 0}
    for i in range(1500):
        try:
            action = agent.act(TASK, [])
        except AgentError:
            outcomes["error"] += 1
            continue
        outcomes["action"] += 1
        assert isinstance(action.name, str) and isinstance(action.arguments, str)
        assert isinstance(action.tokens, int)
        if i % 50 == 0:  # the answer file can always be written, lone surrogates included
            write_json_atomic(
                tmp_path / "a.json", {"content": action.thought, "raw": action.outputs}, indent=2
            )
            json.loads((tmp_path / "a.json").read_text())
    assert outcomes["action"] > 500 and outcomes["error"] > 10


def test_deep_or_huge_chat_replies_are_agent_errors_not_crashes():
    for content in (b"[" * 100000, b'{"choices": ' * 5000, b"1" * 5000, b"\xff\xfe\x00"):
        http = httpx.Client(
            transport=httpx.MockTransport(lambda r, c=content: httpx.Response(200, content=c))
        )
        with pytest.raises(AgentError):
            OpenAIAgent("http://llm.test/v1", "m", http_client=http, retries=0).act(TASK, [])


@pytest.mark.parametrize("seed", range(3))
def test_the_search_survives_adversarial_generations_and_always_writes_its_answer(seed, tmp_path):
    rng = random.Random(seed)
    pieces = ["Next: caller.", "Next: conclusion.", "Next: give up.", "Action:", "Action Input:", "</s>",
              '{"return_type": "give_answer", "final_answer": ', "[" * 50, SURROGATE, "\n", " ", "Finish",
              "get_weather_for_weather", "conclusion: "]  # fmt: skip

    class Random:
        def generate(self, prompts):
            return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in prompts]

    gen = Random()
    for agent in (AlphaUmiAgent(gen, gen, gen), BackboneAgent(gen)):
        for method in ("CoT@1", "DFS_woFilter_w2"):
            data = search(agent, FakeEnv(), "q?", method, Limits(max_queries=30)).to_json("q?")
            write_json_atomic(tmp_path / f"{agent.name}_{method}.json", data, indent=2)
            assert isinstance(data["answer_generation"]["valid_data"], bool)


def test_protocol_readers_never_raise_on_hostile_text():
    rng = random.Random(1)
    alphabet = ['"', "{", "}", "[", "]", ":", ",", "\\", "return_type", "give_answer", "give_up_and_restart",
                "final_answer", "response", "error", "Next: ", "conclusion: ", "</s>", "Action:", SURROGATE,
                "1" * 50, " "]  # fmt: skip
    samples = ["[" * 5000, "{" * 5000, '{"a":' * 3000, "9" * 5000] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)
    ]
    for text in samples:
        parsing.parse_finish(text, fallback="env")
        parsing.parse_finish(text, fallback="stage2", content="c")
        parsing.parse_function_content(text, fallback="raw")
        parsing.parse_function_content(text, fallback="decode")
        parsing.observation_from_content(text)
        parsing.parse_step(text)
        parsing.parse_backbone_step(text)
        parsing.parse_planner_output(text)
        parsing.split_backbone_output(text)
        observation_text(text, text)

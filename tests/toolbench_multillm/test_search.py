"""CoT@n and DFSDT driven by scripted policies: backtracking, limits, histories, answer chains."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from search_fakes import ANSWER, FORECAST, GIVE_UP, WEATHER, FakeEnv, ScriptedAgent, call

from toolbench_multillm.agents import Action, AgentError, AlphaUmiAgent
from toolbench_multillm.search import Limits, parse_method, solve


def test_parse_method_names():
    assert parse_method("CoT@1") == ("cot", 1)
    assert parse_method("DFS_woFilter_w2") == ("dfs", 2)
    for bad in ("DFS_w2", "BFS", "CoT@0"):
        with pytest.raises(ValueError):
            parse_method(bad)


def test_cot_reaches_a_final_answer():
    agent = ScriptedAgent(lambda key, n: call(WEATHER) if not key else ANSWER)
    data = solve(agent, FakeEnv(), "weather in Paris?", "CoT@1")
    gen = data["answer_generation"]
    assert gen["valid_data"] and gen["finish_type"] == "give_answer" and data["win"]
    assert json.loads(gen["final_answer"])["final_answer"] == "It is 21 degrees."
    assert gen["query_count"] == 2 and gen["query"] == "weather in Paris?"
    chain = gen["train_messages"][-1]
    assert [m["role"] for m in chain] == ["system", "user", "assistant", "function", "assistant"]
    assert chain[2]["function_call"] == {"name": WEATHER, "arguments": '{"city": "Paris"}'}
    assert chain[3]["content"] == json.dumps({"temp": 21, "api": WEATHER})
    assert len(gen["train_messages"]) == 2 and data["try_count"] == 1


def test_cot_at_2_restarts_after_a_give_up():
    agent = ScriptedAgent(lambda key, n: GIVE_UP if n == 0 else ANSWER)
    data = solve(agent, FakeEnv(), "q", "CoT@2")
    assert data["try_count"] == 2 and [t["win"] for t in data["trys"]] == [False, True]
    assert data["answer_generation"]["finish_type"] == "give_answer"


def test_cot_stops_when_depth_runs_out():
    agent = ScriptedAgent(lambda key, n: call(WEATHER))
    data = solve(agent, FakeEnv(), "q", "CoT@1", Limits(max_depth=12))
    gen = data["answer_generation"]
    assert gen["query_count"] == 4  # paper parity: 3 tree nodes per step
    assert not gen["valid_data"] and gen["train_messages"] == []


def test_dfsdt_backtracks_after_a_give_up_and_finds_the_answer_on_a_sibling():
    def policy(key, n):
        if key == ():
            return call(WEATHER) if n == 0 else call(FORECAST)
        if key == (WEATHER,):
            return GIVE_UP
        return ANSWER

    agent = ScriptedAgent(policy)
    data = solve(agent, FakeEnv(), "q", "DFS_woFilter_w2")
    gen = data["answer_generation"]
    assert gen["valid_data"] and gen["finish_type"] == "give_answer"
    assert gen["query_count"] == 4
    assert [m["function_call"]["name"] for m in gen["train_messages"][-1] if m["role"] == "assistant"] == [
        FORECAST,
        "Finish",
    ]
    root = data["tree"]["tree"]
    assert root["child_count"] == 2  # the give-up sent the search back to the root for a second child
    assert data["forward_args"] == {
        "single_chain_max_step": 12,
        "tree_beam_size": 2,
        "max_query_count": 200,
        "answer": 1,
        "with_filter": False,
    }
    # the second child was asked for with a note about the first (for agents that can use it)
    assert agent.diversity[0] is None and WEATHER in agent.diversity[2]


def test_dfsdt_backtracks_one_level_when_a_branch_runs_out_of_depth():
    def policy(key, n):
        if len(key) == 1 and n == 1:
            return ANSWER
        return call(WEATHER)

    data = solve(ScriptedAgent(policy), FakeEnv(), "q", "DFS_woFilter_w2", Limits(max_depth=6))
    gen = data["answer_generation"]
    assert gen["valid_data"] and gen["query_count"] == 3
    assert [m["function_call"]["name"] for m in gen["train_messages"][-1] if m["role"] == "assistant"] == [
        WEATHER,
        "Finish",
    ]


def test_dfsdt_stops_at_the_query_limit():
    data = solve(
        ScriptedAgent(lambda key, n: call(WEATHER)), FakeEnv(), "q", "DFS_woFilter_w2", Limits(max_queries=5)
    )
    gen = data["answer_generation"]
    assert gen["query_count"] == 5 and not data["win"] and not gen["valid_data"]


def test_dfsdt_gives_up_twice_then_keeps_a_give_up_chain():
    # a give-up climbs two levels: from the first call's child back to the root, which tries a sibling;
    # the sibling's give-up climbs past the root and ends the search
    agent = ScriptedAgent(lambda key, n: call(WEATHER) if not key else GIVE_UP)
    data = solve(agent, FakeEnv(), "q", "DFS_woFilter_w2")
    gen = data["answer_generation"]
    assert gen["query_count"] == 4 and not data["win"]
    assert gen["valid_data"] and gen["finish_type"] == "give_up"
    assert json.loads(gen["final_answer"]) == {"return_type": "give_up_and_restart"}
    assert data["tree"]["tree"]["child_count"] == 2


def test_dfsdt_answer_found_by_the_last_allowed_query_is_kept():
    data = solve(
        ScriptedAgent(lambda key, n: ANSWER), FakeEnv(), "q", "DFS_woFilter_w2", Limits(max_queries=1)
    )
    assert data["answer_generation"]["valid_data"] and data["win"]


def test_hallucinated_function_name_is_recorded_as_invalid_in_train_messages():
    agent = ScriptedAgent(lambda key, n: call("weather") if not key else ANSWER)
    gen = solve(agent, FakeEnv(), "q", "CoT@1")["answer_generation"]
    first = gen["train_messages"][-1][2]
    assert first["function_call"]["name"] == "invalid_hallucination_function_name"


def test_agent_failure_prunes_the_branch_instead_of_crashing():
    class Failing(ScriptedAgent):
        def act(self, task, steps, diversity=None):
            if not steps and self.asked.get((), 0) == 0:
                self.asked[()] = 1
                raise AgentError("endpoint down")
            return ANSWER

    data = solve(Failing(None), FakeEnv(), "q", "DFS_woFilter_w2")
    assert data["answer_generation"]["valid_data"] and data["answer_generation"]["query_count"] == 2


def test_dfs_diversity_prompt_never_reaches_the_planner_history_fixes_leak():
    class Recorder:
        def __init__(self, outputs):
            self.outputs, self.prompts = list(outputs), []

        def generate(self, prompts):
            self.prompts += prompts
            return [self.outputs.pop(0) for _ in prompts]

    # root: give up twice is impossible to answer → the search asks the root again with a diversity note
    planner = Recorder(["a Next: caller.", "b Next: give up.", "c Next: conclusion.", "d Next: conclusion."])
    caller = Recorder([f"Action: {WEATHER}\nAction Input: {{}}"])
    summarizer = Recorder(["done", "done"])
    agent = AlphaUmiAgent(planner, caller, summarizer)
    data = solve(agent, FakeEnv(), "q?", "DFS_woFilter_w2")
    assert data["answer_generation"]["valid_data"]
    assert len(planner.prompts) == 3
    for prompt in planner.prompts + summarizer.prompts:
        assert prompt.count("user: ") == 1  # only the query; no DFS prompt as a user turn
        assert "Do something different" not in prompt and "function_output" not in prompt
    assert planner.prompts[2] == planner.prompts[0]  # back at the root: the same history as the first time


def test_tool_calls_are_not_preceded_by_a_sleep_fixes_2s_delay():
    from toolbench_multillm import env as E
    from toolbench_multillm.tools import build_toolset

    query = {
        "query": "q",
        "api_list": [{"category_name": "Data", "tool_name": "Weather", "api_name": "Get weather"}],
    }
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"error": "", "response": "sunny"}))
    )
    client = E.ToolClient(f"http://tools.test/{time.monotonic_ns()}", None, http_client=http)
    env = E.ToolEnv(build_toolset(query), client)
    agent = ScriptedAgent(lambda key, n: Action("t", WEATHER, "{}", {}) if len(key) < 3 else ANSWER)
    start = time.monotonic()
    data = solve(agent, env, "q", "DFS_woFilter_w2", Limits(max_depth=30))
    assert time.monotonic() - start < 1.0
    chain = data["answer_generation"]["train_messages"][-1]
    assert [m["content"] for m in chain if m["role"] == "function"] == ['"sunny"'] * 3

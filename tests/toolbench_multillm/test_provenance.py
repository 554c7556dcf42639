"""Observation provenance end to end: a search against the tool server (StableToolBench's cache in place,
its GPT simulator behind it) → answer files → converted answers → pass rate split by simulated observations.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from search_fakes import ANSWER, GIVE_UP, ScriptedAgent
from test_judge import FakeJudgeServer
from test_tooleval import judge_args, pass_reply

from toolbench_multillm.agents import Action
from toolbench_multillm.cache import ResponseCache
from toolbench_multillm.convert import convert_answers
from toolbench_multillm.env import ToolClient, ToolEnv
from toolbench_multillm.judge import SOLVED, UNSOLVED
from toolbench_multillm.search import solve
from toolbench_multillm.server import ServerConfig, create_app
from toolbench_multillm.simulator import Simulator
from toolbench_multillm.sources import simulated_observations
from toolbench_multillm.stb_cache import StbFolder
from toolbench_multillm.tooleval import main as tooleval
from toolbench_multillm.tools import build_toolset

ASSET = Path(__file__).resolve().parents[1] / "assets" / "stb_cache" / "tool_response_cache"
FORECAST = "get_forecast_for_weather_api"
QUERY = {
    "query_id": 1,
    "query": "Weather?",
    "api_list": [
        {
            "category_name": "Data",
            "tool_name": "Weather API",
            "api_name": "Get Forecast",
            "api_description": "Forecast for a city",
            "required_parameters": [{"name": "city", "type": "STRING", "description": "city"}],
            "optional_parameters": [],
            "method": "GET",
        }
    ],
}
METHOD = "DFS_woFilter_w2"


def forecast(city: str) -> Action:
    return Action("think", FORECAST, json.dumps({"city": city}), {})


#: query → the scripted agent's policy (key: names of the steps so far, n: how often asked from there)
POLICIES = {
    # tries a simulated city, gives up, backtracks and answers from a cached one: its judged chain is real
    "Paris, after a detour": lambda key, n: (
        (forecast("Lyon") if n == 0 else forecast("Paris")) if not key else (GIVE_UP if n == 0 else ANSWER)
    ),
    # answers after a cached and a simulated observation
    "Paris and Rome": lambda key, n: (
        forecast("Paris") if not key else forecast("Rome") if len(key) == 1 else ANSWER
    ),
    # answers from one cached observation only
    "Paris only": lambda key, n: forecast("Paris") if not key else ANSWER,
}


def llm(request: httpx.Request) -> httpx.Response:
    city = request.content.decode().rsplit("API Input:", 1)[1].split("'")[3]
    content = json.dumps({"error": "", "response": {"city": city, "temp": 12}})
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


def test_answer_files_convert_and_pass_rate_carry_simulated_observations(tmp_path, capsys):
    sim = Simulator(
        "http://llm.test/v1",
        "gpt-4-turbo",
        format="stb-gpt",
        http_client=httpx.Client(transport=httpx.MockTransport(llm)),
    )
    config = ServerConfig(
        cache=ResponseCache(tmp_path / "c.sqlite"),
        simulator=sim,
        stb_folder=StbFolder(str(ASSET)),
        stb_rules=True,
    )
    answers = tmp_path / "answers" / "G1_instruction"
    answers.mkdir(parents=True)
    with TestClient(create_app(config)) as c:
        client = ToolClient("http://testserver/virtual", None, http_client=c)
        for qid, (query, policy) in enumerate(POLICIES.items(), start=1):
            env = ToolEnv(build_toolset({**QUERY, "query": query}), client)
            data = solve(ScriptedAgent(policy), env, query, METHOD)
            (answers / f"{qid}_{METHOD}.json").write_text(json.dumps(data))
        stats = c.get("/stats").json()["by_source"]
    assert stats["cache-real"] == 3 and stats["simulated:stb-gpt:gpt-4-turbo"] == 2

    files = {q: json.loads((answers / f"{q}_{METHOD}.json").read_text()) for q in (1, 2, 3)}
    gen = files[1]["answer_generation"]
    assert gen["valid_data"] and gen["observation_sources"] == {
        "cache-real": 1,
        "environment": 2,
        "simulated:stb-gpt:gpt-4-turbo": 1,
    }
    sources = []
    stack = [files[2]["tree"]["tree"]]
    while stack:
        node = stack.pop()
        sources.append(node.get("observation_source"))
        stack += node["children"]
    assert {"cache-real", "simulated:stb-gpt:gpt-4-turbo", "environment"} <= set(sources)
    # the detour's simulated step is in the tree, not in the judged chain
    assert [simulated_observations(f, f["answer_generation"]) for f in files.values()] == [0, 1, 0]
    invalid = {**files[2], "answer_generation": {**files[2]["answer_generation"], "valid_data": False}}
    assert simulated_observations(invalid, invalid["answer_generation"]) == 1  # any node of the tree
    unknown = {**files[3], "answer_generation": {k: v for k, v in gen.items() if k != "observation_sources"}}
    assert simulated_observations(unknown, unknown["answer_generation"]) is None

    conv = convert_answers(answers, METHOD).answers
    assert {q: e["simulated_observations"] for q, e in conv.items()} == {"1": 0, "2": 1, "3": 0}
    out = tmp_path / "converted" / "model"
    assert (
        tooleval(
            [
                "convert",
                "--answer_dir",
                str(answers),
                "--method",
                METHOD,
                "--output",
                str(out / "G1_instruction.json"),
            ]
        )
        == 0
    )
    assert "1 of them hold simulated observations" in capsys.readouterr().out
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / "G1_instruction.json").write_text(json.dumps({"1": 0, "2": 0, "3": 0}))

    def judge(req):  # "Paris and Rome" (the simulated one) is judged Unsolved, the others Solved
        return pass_reply(UNSOLVED if "Paris and Rome" in req["messages"][1]["content"] else SOLVED)

    save = tmp_path / "pass"
    with FakeJudgeServer(respond=judge) as srv:
        assert tooleval(["pass-rate", "--converted_answer_path", str(out), *judge_args(srv, save, ids)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((save / "model_pass_rate_summary.json").read_text())
    group = summary["groups"]["G1_instruction"]
    assert round(group["mean"], 6) == round(200 / 3, 6)
    split = group["by_simulation"]
    assert (split["with_simulated"]["mean"], split["with_simulated"]["n_queries"]) == (0.0, 1)
    assert (split["without_simulated"]["mean"], split["without_simulated"]["n_queries"]) == (100.0, 2)
    assert split["unknown_provenance"]["n_queries"] == 0
    assert summary["average_by_simulation"]["without_simulated"]["mean"] == 100.0
    assert "with simulated" in printed and "without simulated" in printed


def test_the_environment_records_each_source_name_and_distrusts_others():
    names = [
        "cache-real",
        "registered",
        "upstream",
        "none",
        "simulated:mirrorapi:MirrorAPI",
        "cache",
        "local",
    ]
    odd = ["simulated:" + "x" * 300, ["cache-real"], "made-up", None]
    replies = iter([{"error": "", "response": "r", "source": s} for s in names + odd])
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(replies))))
    env = ToolEnv(build_toolset(QUERY), ToolClient("http://tools.test/virtual", None, http_client=http))
    seen = []
    for _ in names + odd:
        env.step(FORECAST, '{"city": "Paris"}')
        seen.append(env.last_source)
    assert seen == names + ["upstream"] * len(
        odd
    )  # a service that does not say (or says nonsense) is upstream

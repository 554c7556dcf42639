"""run-queries: answer files in ToolBench's format, reruns, kills, workers, tiny models, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from search_fakes import ANSWER, WEATHER, FakeEnv, ScriptedAgent, call

from toolbench_multillm.agents import Action, AlphaUmiAgent
from toolbench_multillm.run_queries import answer_path, answer_queries
from toolbench_multillm.search import Limits


def _types(obj):
    return {k: type(v).__name__ for k, v in obj.items()}


@pytest.mark.parametrize(
    "method,folder", [("CoT@1", "virtual_chatgpt_cot"), ("DFS_woFilter_w2", "virtual_chatgpt_dfs")]
)
def test_answer_files_match_the_reference_format(reference_dir, tmp_path, method, folder):
    ref_path = sorted(
        (reference_dir / "stabletoolbench/data_example/answer" / folder).rglob(f"*_{method}.json")
    )[0]
    ref = json.loads(ref_path.read_text())
    agent = ScriptedAgent(lambda key, n: call(WEATHER) if not key else ANSWER)
    summary = answer_queries(
        [{"query_id": 7, "query": "q"}], lambda q: FakeEnv(), agent, method, tmp_path, progress=False
    )
    assert summary.answered == 1
    path = answer_path(tmp_path, 7, method)
    assert path.name == f"7_{method}.json"
    ours = json.loads(path.read_text())
    assert set(ref) <= set(ours)
    ref_gen, our_gen = _types(ref["answer_generation"]), _types(ours["answer_generation"])
    assert {k: our_gen.get(k) for k in ref_gen} == ref_gen
    assert set(our_gen) >= {
        "valid_data",
        "query_count",
        "total_tokens",
        "final_answer",
        "finish_type",
        "function",
        "chain",
        "train_messages",
        "query",
    }
    ref_msgs, our_msgs = (
        ref["answer_generation"]["train_messages"][-1],
        ours["answer_generation"]["train_messages"][-1],
    )
    assert [m["role"] for m in our_msgs[:2]] == [m["role"] for m in ref_msgs[:2]] == ["system", "user"]
    assert set(ours["forward_args"]) == set(ref["forward_args"])
    for kind in ("Action", "Action Input"):
        ref_node = next(n for n in ref["compare_candidates"][0] if n["node_type"] == kind)
        our_node = next(n for n in ours["compare_candidates"][0] if n["node_type"] == kind)
        assert {k: type(our_node.get(k)) for k in ref_node} == {k: type(v) for k, v in ref_node.items()}
    if "tree" in ref:
        assert set(ref["tree"]) == set(ours["tree"])
        assert set(ref["tree"]["tree"]) <= set(ours["tree"]["tree"])
    # and the ToolEval converter reads it
    from toolbench_multillm.convert import convert_answer_dir

    converted = convert_answer_dir(tmp_path, method)
    steps = converted["7"]["answer"]
    assert steps["final_answer"] == ours["answer_generation"]["final_answer"] and steps["total_steps"] == 4


def test_rerun_skips_finished_ids_and_retries_failed_ones(tmp_path):
    queries = [{"query_id": i, "query": f"q{i}"} for i in range(4)]

    class Flaky(ScriptedAgent):
        def act(self, task, steps, diversity=None):
            if task.query == "q2":
                raise RuntimeError("crash mid-query")
            return ANSWER

    first = answer_queries(
        queries, lambda q: FakeEnv(), Flaky(None), "CoT@1", tmp_path, num_workers=2, progress=False
    )
    assert (first.answered, first.failed) == (3, 1)
    assert not answer_path(tmp_path, 2, "CoT@1").exists()
    (tmp_path / ".2_CoT@1.json.123.tmp").write_text("{half")  # what a kill during a write could leave
    asked = []

    class Counting(ScriptedAgent):
        def act(self, task, steps, diversity=None):
            asked.append(task.query)
            return ANSWER

    second = answer_queries(queries, lambda q: FakeEnv(), Counting(None), "CoT@1", tmp_path, progress=False)
    assert asked == ["q2"] and second.skipped_done == 3 and second.answered == 1


def test_killed_run_leaves_only_complete_files_and_rerun_skips_them(tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from search_fakes import FakeEnv, ScriptedAgent, ANSWER
        from toolbench_multillm.run_queries import answer_queries
        class Slow(ScriptedAgent):
            def act(self, task, steps, diversity=None):
                if task.query == "q1":
                    time.sleep(60)
                return ANSWER
        answer_queries([{{"query_id": i, "query": f"q{{i}}"}} for i in range(2)], lambda q: FakeEnv(), Slow(None),
                    "CoT@1", {str(tmp_path)!r}, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not answer_path(tmp_path, 0, "CoT@1").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert answer_path(tmp_path, 0, "CoT@1").exists() and not answer_path(tmp_path, 1, "CoT@1").exists()
    json.loads(answer_path(tmp_path, 0, "CoT@1").read_text())
    asked = []

    class Counting(ScriptedAgent):
        def act(self, task, steps, diversity=None):
            asked.append(task.query)
            return ANSWER

    summary = answer_queries(
        [{"query_id": i, "query": f"q{i}"} for i in range(2)],
        lambda q: FakeEnv(),
        Counting(None),
        "CoT@1",
        tmp_path,
        progress=False,
    )
    assert asked == ["q1"] and summary.skipped_done == 1


def test_queries_whose_tools_are_missing_are_skipped(tmp_path):
    def make_env(q):
        raise LookupError("tool not found")

    summary = answer_queries(
        [{"query_id": 1, "query": "q"}],
        make_env,
        ScriptedAgent(lambda k, n: ANSWER),
        "CoT@1",
        tmp_path,
        progress=False,
    )
    assert summary.skipped_no_tools == 1 and not list(tmp_path.glob("*.json"))


def test_num_workers_answers_queries_in_parallel(tmp_path):
    queries = [{"query_id": i, "query": f"q{i}"} for i in range(6)]

    class Sleepy(ScriptedAgent):
        def act(self, task, steps, diversity=None):
            time.sleep(0.2)
            return ANSWER

    start = time.monotonic()
    summary = answer_queries(
        queries, lambda q: FakeEnv(), Sleepy(None), "DFS_woFilter_w2", tmp_path, num_workers=6, progress=False
    )
    assert summary.answered == 6 and time.monotonic() - start < 1.0
    assert len(list(tmp_path.glob("*_DFS_woFilter_w2.json"))) == 6


@pytest.mark.slow
def test_tiny_random_models_run_the_collaborative_agent_end_to_end(tiny_model_dir, tmp_path):
    from glpft.generation import DecodingConfig
    from glpft.modeling import load_model_and_tokenizer
    from toolbench_multillm.generators import ModelGenerator

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    gen = ModelGenerator(
        model, tok, DecodingConfig(max_new_tokens=12, do_sample=True, temperature=0.5), context_length=1024
    )
    agent = AlphaUmiAgent(gen, gen, gen)
    env = FakeEnv()
    summary = answer_queries(
        [{"query_id": 1, "query": "What is the weather in Paris?"}],
        lambda q: env,
        agent,
        "DFS_woFilter_w2",
        tmp_path,
        limits=Limits(max_queries=6),
        progress=False,
    )
    assert summary.failed == 0
    data = json.loads(answer_path(tmp_path, 1, "DFS_woFilter_w2").read_text())
    gen_ = data["answer_generation"]
    assert 1 <= gen_["query_count"] <= 6 and gen_["total_tokens"] > 0
    assert env.calls  # every step reached the environment, garbage or not


@pytest.mark.slow
def test_run_queries_main_wires_models_tools_env_and_search(reference_dir, tiny_model_dir, tmp_path, caplog):
    from toolbench_multillm.run_queries import main

    queries = json.loads(
        (reference_dir / "stabletoolbench/solvable_queries/test_instruction/G1_instruction.json").read_text()
    )[:2]
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps(queries))
    out = tmp_path / "out"
    argv = [
        "--backbone_model", "collab_agent_v3",
        "--planner_model_path", str(tiny_model_dir), "--caller_model_path", str(tiny_model_dir),
        "--summarizer_model_path", str(tiny_model_dir), "--planner_use_lora", "False",
        "--device", "cpu", "--max_new_tokens", "8", "--context_length", "1024",
        "--backend", "server", "--service_url", "http://127.0.0.1:9/rapidapi", "--tool_retries", "0",
        "--toolbench_key", "tb-secret-xyz",
        "--method", "CoT@1", "--max_depth", "6",
        "--input_query_file", str(qfile), "--output_answer_file", str(out),
    ]  # fmt: skip
    with caplog.at_level("INFO"):
        assert main(argv) == 0  # the random tiny model never names a real API: no tool call is made
    files = sorted(out.glob("*_CoT@1.json"))
    assert [f.name for f in files] == sorted(f"{q['query_id']}_CoT@1.json" for q in queries)
    for f in files:
        assert "tb-secret-xyz" not in f.read_text()
    assert "tb-secret-xyz" not in caplog.text
    assert main(argv) == 0  # rerun: everything already answered


def test_role_devices_one_per_role_all_on_one_or_cpu():
    from toolbench_multillm.agent_setup import role_devices
    from toolbench_multillm.run_queries import build_parser

    base = ["--input_query_file", "q.json", "--output_answer_file", "out"]
    parse = build_parser().parse_args
    assert role_devices(parse(base + ["--use_multi_gpu", "true"]), 3) == {
        "planner": "cuda:0",
        "caller": "cuda:1",
        "summarizer": "cuda:2",
    }
    assert set(role_devices(parse(base + ["--use_multi_gpu", "true"]), 1).values()) == {"cuda:0"}
    assert set(role_devices(parse(base + ["--device", "cuda:1"]), 4).values()) == {"cuda:1"}
    assert set(role_devices(parse(base), 0).values()) == {"cpu"}
    explicit = role_devices(parse(base + ["--use_multi_gpu", "True", "--caller_device", "cpu"]), 2)
    assert explicit == {"planner": "cuda:0", "caller": "cpu", "summarizer": "cuda:0"}


def test_service_url_comes_from_the_flag_and_a_missing_key_is_a_clear_error_fixes_hard_coded_url(
    tmp_path, capsys
):
    from toolbench_multillm import env as E
    from toolbench_multillm.run_queries import build_parser, main

    args = build_parser().parse_args(
        ["--backend", "server", "--service_url", "http://127.0.0.1:1234/rapidapi"]
        + ["--input_query_file", "q.json", "--output_answer_file", "out"]
    )
    assert E.client_from_args(args).url == "http://127.0.0.1:1234/rapidapi"
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps([{"query_id": 1, "query": "q", "api_list": []}]))
    argv = ["--backend", "toolbench", "--input_query_file", str(qfile), "--output_answer_file", str(tmp_path)]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TOOLBENCH_KEY", raising=False)
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alpha-umi run-queries: error: ") and "key" in err and "\n" not in err


def test_gold_trajectory_replayed_through_the_tool_server_writes_its_observations(reference_dir, tmp_path):
    """Search + ToolEnv + the tool server (in-process, cache seeded from the reference answers)."""
    from fastapi.testclient import TestClient

    from toolbench_multillm import env as E
    from toolbench_multillm.cache import ResponseCache, build_cache
    from toolbench_multillm.server import ServerConfig, create_app
    from toolbench_multillm.tools import toolset_from_functions

    answers = reference_dir / "toolbench_data_example/answer"
    build_cache(str(answers), str(tmp_path / "cache.sqlite"))
    gold = None
    for path in sorted(answers.rglob("*.json")):
        gen = json.loads(path.read_text())["answer_generation"]
        chain = gen["train_messages"][-1]
        names = {f["name"] for f in gen["function"]}
        calls = [
            (a["function_call"]["name"], a["function_call"]["arguments"], m["content"])
            for a, m in zip(chain, chain[1:])
            if a["role"] == "assistant" and a.get("function_call") and m["role"] == "function"
        ]
        if calls and all(c[0] in names and c[0] != "Finish" and "Timeout error" not in c[2] for c in calls):
            if all(len(c[2]) < 1024 for c in calls):
                gold = (gen, calls)
                break
    assert gold is not None
    gen, calls = gold

    def policy(key, n):
        if len(key) < len(calls):
            name, arguments, _ = calls[len(key)]
            return Action("replay", name, arguments, {})
        return ANSWER

    with TestClient(create_app(ServerConfig(cache=ResponseCache(tmp_path / "cache.sqlite")))) as http:
        client = E.make_client("server", url="http://testserver/rapidapi", http_client=http)

        def make_env(q):
            return E.ToolEnv(toolset_from_functions(gen["function"]), client, observation_format="toolbench")

        summary = answer_queries(
            [{"query_id": 5, "query": gen["query"]}],
            make_env,
            ScriptedAgent(policy),
            "DFS_woFilter_w2",
            tmp_path / "out",
            limits=Limits(max_depth=3 * len(calls) + 3),
            progress=False,
        )
    assert summary.answered == 1
    out = json.loads(answer_path(tmp_path / "out", 5, "DFS_woFilter_w2").read_text())["answer_generation"]
    observed = [m["content"] for m in out["train_messages"][-1] if m["role"] == "function"]
    assert observed == [c[2] for c in calls]


@pytest.mark.slow
def test_save_prompts_writes_every_model_input_beside_the_answer(tiny_model_dir, tmp_path):
    from glpft import prompts as P
    from toolbench_multillm.demo import ToolServerThread
    from toolbench_multillm.demo_apis import api_docs
    from toolbench_multillm.run_queries import main, prompts_path
    from toolbench_multillm.tools import build_toolset

    query = {"query_id": 7, "query": "What is the weather in Paris?", "api_list": api_docs(["Weather Table"])}
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps([query]))
    out = tmp_path / "out"
    with ToolServerThread(tmp_path / "cache.sqlite") as server:
        argv = [
            "--planner_model_path", str(tiny_model_dir), "--caller_model_path", str(tiny_model_dir),
            "--summarizer_model_path", str(tiny_model_dir), "--device", "cpu", "--decoding", "greedy",
            "--max_new_tokens", "6", "--context_length", "512", "--backend", "server",
            "--service_url", server.url, "--method", "CoT@1", "--max_depth", "6", "--save_prompts",
            "--input_query_file", str(qfile), "--output_answer_file", str(out),
        ]  # fmt: skip
        assert main(argv) == 0
    rows = [json.loads(line) for line in prompts_path(out, 7, "CoT@1").read_text().splitlines()]
    assert rows and {r["role"] for r in rows} <= {"planner", "caller", "summarizer"}
    assert rows[0]["role"] == "planner" and rows[0]["step"] == 1 and rows[0]["depth"] == 0
    tools = build_toolset(query).prompt_tools
    assert rows[0]["text"] == P.planner_prompt(tools, "user: What is the weather in Paris?</s>")
    from glpft.modeling import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    budget = P.prompt_budget(512, 6)
    for r in rows:
        full = len(tok(r["text"]).input_ids)
        assert r["tokens"] == min(full, budget) and r["dropped_tokens"] == full - r["tokens"]
    # the answer file's steps are the prompts' steps
    data = json.loads(answer_path(out, 7, "CoT@1").read_text())
    assert max(r["step"] for r in rows) == data["answer_generation"]["query_count"]


def _dead_backend_env(query, url="http://127.0.0.1:9/rapidapi"):
    from toolbench_multillm.env import ToolClient, ToolEnv
    from toolbench_multillm.tools import build_toolset

    return ToolEnv(build_toolset(query), ToolClient(url, "tb-secret-xyz", timeout=2, max_retries=0))


DEAD_QUERIES = [
    {
        "query_id": i,
        "query": f"weather {i}?",
        "api_list": [{"category_name": "Data", "tool_name": "Weather", "api_name": "Get weather"}],
    }
    for i in range(6)
]


def test_a_dead_tool_backend_answers_nothing_stops_the_run_and_reruns_redo_it_fixes_silent_success(tmp_path):
    agent = ScriptedAgent(lambda key, n: call(WEATHER) if not key else ANSWER)
    summary = answer_queries(DEAD_QUERIES, _dead_backend_env, agent, "CoT@1", tmp_path, progress=False)
    # fixes: every call failed, yet the run said "answered 12, failed 0" and wrote valid_data: true
    assert summary.answered == 0 and summary.failed_infrastructure == 3 and summary.not_started == 3
    assert "3 queries in a row failed" in summary.stopped and "127.0.0.1:9" in summary.stopped
    files = sorted(tmp_path.glob("*_CoT@1.json"))
    assert len(files) == 3
    for f in files:
        gen = json.loads(f.read_text())["answer_generation"]
        assert gen["valid_data"] is False and "request failed" in gen["infrastructure_error"]
        assert "tb-secret-xyz" not in f.read_text()
    # the backend is back: the failed queries are redone, none is "already answered"
    again = answer_queries(DEAD_QUERIES, lambda q: FakeEnv(), agent, "CoT@1", tmp_path, progress=False)
    assert again.skipped_done == 0 and again.answered == 6


def test_run_queries_exits_non_zero_and_says_why_when_the_backend_is_down(tmp_path, capsys, monkeypatch):
    from toolbench_multillm import run_queries as R

    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps(DEAD_QUERIES[:2]))
    monkeypatch.setattr(
        R, "build_agent", lambda args: ScriptedAgent(lambda k, n: call(WEATHER) if not k else ANSWER)
    )
    argv = ["--backend", "server", "--service_url", "http://user:pw@127.0.0.1:9/rapidapi", "--tool_retries", "0",
            "--max_consecutive_failures", "1", "--input_query_file", str(qfile), "--output_answer_file",
            str(tmp_path / "out")]  # fmt: skip
    assert R.main(argv) == 1
    captured = capsys.readouterr()
    assert "failed infrastructure       1" in captured.out and "not started                 1" in captured.out
    assert "stopped early" in captured.err and "pw" not in captured.err + captured.out


def test_observation_sources_are_recorded_in_the_answer_file(tmp_path):
    import httpx

    from toolbench_multillm.env import ToolClient, ToolEnv
    from toolbench_multillm.tools import build_toolset

    replies = iter([{"error": "", "response": "sunny", "source": "cache"}, {"error": "", "response": "x"}])
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(replies))))

    def make_env(q):
        return ToolEnv(build_toolset(q), ToolClient("http://tools.test/rapidapi", None, http_client=http))

    agent = ScriptedAgent(lambda key, n: call(WEATHER) if len(key) < 2 else ANSWER)
    answer_queries(
        DEAD_QUERIES[:1], make_env, agent, "CoT@1", tmp_path, progress=False, limits=Limits(max_depth=30)
    )
    data = json.loads(answer_path(tmp_path, 0, "CoT@1").read_text())
    assert data["answer_generation"]["observation_sources"] == {"cache": 1, "environment": 1, "upstream": 1}
    nodes, stack = [], [data["tree"]["tree"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack += node["children"]
    assert sorted(n["observation_source"] for n in nodes if "observation_source" in n) == [
        "cache", "environment", "upstream"]  # fmt: skip


def test_a_tool_server_killed_mid_run_leaves_no_answer_resting_on_it(tmp_path):
    from toolbench_multillm.demo import ToolServerThread
    from toolbench_multillm.demo_apis import api_docs
    from toolbench_multillm.env import ToolClient, ToolEnv
    from toolbench_multillm.tools import build_toolset

    weather = "current_weather_for_weather_table"
    queries = [
        {"query_id": i, "query": f"weather {i}?", "api_list": api_docs(["Weather Table"])} for i in range(8)
    ]
    server = ToolServerThread(tmp_path / "cache.sqlite").__enter__()
    client = ToolClient(server.url, None, timeout=5, max_retries=1, backoff=0.0)

    class KillsTheServer(ScriptedAgent):
        def act(self, task, steps, diversity=None):
            if task.query == "weather 3?" and not steps:
                server.__exit__(None, None, None)  # the server dies while query 3 runs
            return Action("t", weather, '{"city": "Paris"}', {}) if not steps else ANSWER

    summary = answer_queries(
        queries, lambda q: ToolEnv(build_toolset(q), client), KillsTheServer(None), "CoT@1", tmp_path / "out",
        progress=False, limits=Limits(max_depth=30),
    )  # fmt: skip
    assert summary.answered == 3 and summary.failed_infrastructure == 3 and summary.not_started == 2
    for i in range(8):
        path = answer_path(tmp_path / "out", i, "CoT@1")
        if i < 3:
            gen = json.loads(path.read_text())["answer_generation"]
            assert gen["valid_data"] and gen["observation_sources"] == {"environment": 1, "registered": 1}
        elif i < 6:
            gen = json.loads(path.read_text())["answer_generation"]
            assert not gen["valid_data"] and gen["infrastructure_error"]
        else:
            assert not path.exists()


def test_bad_flags_and_files_give_one_line_errors(tmp_path, capsys):
    from toolbench_multillm.run_queries import main

    good = tmp_path / "q.json"
    good.write_text(json.dumps(DEAD_QUERIES[:1]))
    common = ["--backend", "server", "--output_answer_file", str(tmp_path / "out")]
    cases = {
        "--method": ["--input_query_file", str(good), "--method", "BFS"],
        "q_bad.json": ["--input_query_file", str(tmp_path / "q_bad.json")],
        "missing_tools": ["--input_query_file", str(good), "--tool_root_dir", str(tmp_path / "missing_tools")],
        "no_model": ["--input_query_file", str(good), "--planner_model_path", str(tmp_path / "no_model"),
                     "--caller_model_path", str(tmp_path / "no_model"), "--summarizer_model_path", "x"],
    }  # fmt: skip
    (tmp_path / "q_bad.json").write_bytes(b"\xff\xfe[{")
    for needle, argv in cases.items():
        assert main(common + argv) == 2, needle
        err = capsys.readouterr().err.strip()
        assert err.startswith("alpha-umi run-queries: error: ") and "\n" not in err, err
        assert needle in err, (needle, err)

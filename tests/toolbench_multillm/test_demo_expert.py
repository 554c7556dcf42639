"""The scripted expert's trajectories: ToolBench shape with fixes, restarts and give-ups, and every
observation replays against the tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glpft.parsing import GIVE_ANSWER, GIVE_UP_RETURN
from toolbench_multillm import demo_data as D
from toolbench_multillm import demo_expert as E

N_TRAIN, N_TEST = 150, 25


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    D.generate_demo_data(out, seed=0, n_train=N_TRAIN, n_test=N_TEST)
    return out


def _answers(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*_demo.json"))}


def test_every_generated_trajectory_replays_to_the_same_observations(demo):
    answers = {**_answers(demo / "answer" / "G1_answer"), **_answers(demo / "test" / "answer" / "G1_answer")}
    assert len(answers) == N_TRAIN + N_TEST
    calls = 0
    for name, answer in answers.items():
        assert E.replay_mismatches(answer) == [], name
        calls += sum(
            1 for ch in answer["answer_generation"]["train_messages"] for m in ch if m["role"] == "function"
        )
    assert calls > N_TRAIN + N_TEST
    # a tampered observation is caught
    answer = next(iter(answers.values()))
    chain = answer["answer_generation"]["train_messages"][-1]
    obs = next(m for m in chain if m["role"] == "function")
    obs["content"] = json.dumps({"error": "", "response": "{'forged': 1}"})
    assert E.replay_mismatches(answer)


def test_expert_trajectories_have_toolbench_shape_with_fixes_restarts_and_give_ups(demo):
    kinds = {"restart": 0, "fix": 0, "give_up": 0, "clean": 0}
    for answer in _answers(demo / "answer" / "G1_answer").values():
        gen = answer["answer_generation"]
        names = {f["name"] for f in gen["function"]}
        assert "Finish" in names
        *abandoned, chosen = gen["train_messages"]
        for chain in gen["train_messages"]:
            assert [m["role"] for m in chain[:2]] == ["system", "user"]
            assert chain[1]["content"] == f"\n{gen['query']}\nBegin!\n"
            for m in chain[2:]:
                assert m["role"] in ("assistant", "function")
                if m["role"] == "assistant":
                    assert m["function_call"]["name"] in names
                    assert m["content"].endswith(".") and len(m["content"]) < 160
                    json.loads(m["function_call"]["arguments"])
            assert chain[-1]["function_call"]["name"] == "Finish"
            assert chain[:2] == chosen[:2]
        for chain in abandoned:
            assert json.loads(chain[-1]["function_call"]["arguments"]) == {"return_type": GIVE_UP_RETURN}
        final = json.loads(chosen[-1]["function_call"]["arguments"])
        if final["return_type"] == GIVE_ANSWER:
            assert gen["finish_type"] == "give_answer" and json.loads(gen["final_answer"]) == final
        else:
            assert gen["finish_type"] == "give_up" and gen["final_answer"] == ""
            kinds["give_up"] += 1
        errors = sum(1 for m in chosen if m["role"] == "function" and json.loads(m["content"])["error"])
        kinds["restart"] += bool(abandoned)
        kinds["fix"] += final["return_type"] == GIVE_ANSWER and errors > 0
        kinds["clean"] += not abandoned and errors == 0
    assert all(n >= 5 for n in kinds.values()), kinds
    assert kinds["clean"] > N_TRAIN / 2

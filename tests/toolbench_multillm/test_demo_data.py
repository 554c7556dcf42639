"""The demo data set: held-out solvable test queries in StableToolBench format, determinism, no
silent overwrite, the CLI, and preprocessing keeping every trajectory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glpft import prepro
from glpft import prompts as P
from toolbench_multillm import demo_data as D
from toolbench_multillm.demo_scenarios import check_answer
from toolbench_multillm.tools import build_toolset, load_queries

N_TRAIN, N_TEST = 150, 25


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    D.generate_demo_data(out, seed=0, n_train=N_TRAIN, n_test=N_TEST)
    return out


def _answers(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*_demo.json"))}


def test_test_queries_are_held_out_solvable_and_in_stabletoolbench_format(demo):
    path = demo / "queries" / "test.json"
    records = json.loads(path.read_text())
    queries = load_queries(path)
    assert len(queries) == len(records) == N_TEST
    ids = json.loads((demo / "test_query_ids" / "G1_demo.json").read_text())
    assert list(ids) == [q.query_id for q in queries]
    train_queries = {
        a["answer_generation"]["query"] for a in _answers(demo / "answer" / "G1_answer").values()
    }
    tests = _answers(demo / "test" / "answer" / "G1_answer")
    for record, query in zip(records, queries):
        assert query.query not in train_queries
        assert check_answer(record, record["reference_answer"])
        assert 1 <= len(record["relevant APIs"]) <= 4
        gen = tests[f"{query.query_id}_demo.json"]["answer_generation"]
        assert gen["query"] == query.query and gen["finish_type"] == "give_answer"
        assert check_answer(record, json.loads(gen["final_answer"])["final_answer"])
        # the real-time toolset of the query offers exactly the functions of its expert trajectory
        toolset = build_toolset(query)
        assert [f["name"] for f in toolset.functions] == [f["name"] for f in gen["function"]]


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    def snapshot(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        D.generate_demo_data(out, seed=seed, n_train=40, n_test=10)
    assert snapshot(a) == snapshot(b)
    assert len(snapshot(a)) == 40 + 10 + 2  # answers, test answers, queries + ids
    assert snapshot(a) != snapshot(c)


def test_held_out_queries_do_not_depend_on_the_training_set_size(tmp_path):
    D.generate_demo_data(tmp_path / "small", seed=0, n_train=5, n_test=8)
    D.generate_demo_data(tmp_path / "large", seed=0, n_train=30, n_test=8)
    for name in ("queries/test.json", "test_query_ids/G1_demo.json"):
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "large" / name).read_bytes()
    with pytest.raises(ValueError):
        D.generate_demo_data(tmp_path / "bad", n_train=0)


def test_existing_demo_data_is_kept_unless_overwrite(tmp_path):
    D.generate_demo_data(tmp_path, seed=0, n_train=12, n_test=3)
    with pytest.raises(FileExistsError):
        D.generate_demo_data(tmp_path, seed=0, n_train=12, n_test=3)
    D.generate_demo_data(tmp_path, seed=1, n_train=5, n_test=2, overwrite=True)
    assert len(list((tmp_path / "answer" / "G1_answer").iterdir())) == 5  # stale files removed
    assert len(list((tmp_path / "test" / "answer" / "G1_answer").iterdir())) == 2


def test_main_writes_the_data_set(tmp_path, capsys):
    assert D.main(["--out", str(tmp_path), "--n-train", "4", "--n-test", "2", "--seed", "7"]) == 0
    assert "4 training trajectories" in capsys.readouterr().out
    assert (tmp_path / "queries" / "test.json").is_file()
    assert D.main(["--out", str(tmp_path), "--n-train", "4"]) == 2  # exists: one line, no traceback
    assert "--overwrite" in capsys.readouterr().err


def test_preprocessing_keeps_every_generated_trajectory(demo, tmp_path):
    summary = prepro.run(str(tmp_path / "train"), data_dir=str(demo), progress=False)
    assert (summary.read, summary.kept, summary.excluded) == (N_TRAIN, N_TRAIN, 0)
    assert sum(summary.skipped.values()) == 0
    assert summary.stats["give_up"] > 0 and summary.stats["finish"] > 0
    assert summary.stats["text_only_assistant"] == summary.stats["assistant_without_route"] == 0
    assert all(summary.samples[r] > 0 for r in P.MODEL_ROLES)
    # the held-out trajectories form a second data dir (the static test set)
    summary = prepro.run(
        str(tmp_path / "test"), data_dir=str(demo / "test"), exclude_test_ids=False, progress=False
    )
    assert summary.kept == N_TEST and sum(summary.skipped.values()) == 0

"""Write the embedded demo's data set: held-out test queries and expert trajectories.

    python -m toolbench_multillm.demo_data --out data/demo --seed 0 [--n-train 200 --n-test 40]

``generate_demo_data(out)`` writes (same seed → byte-identical files):

- ``<out>/answer/G1_answer/<id>_demo.json`` — training trajectories, ids 1..n (input of ``alpha-umi prepro``);
- ``<out>/test/answer/G1_answer/<id>_demo.json`` — expert trajectories of the held-out queries, ids
  from 100001 (a second prepro data dir: its stage-2 file is the static test set);
- ``<out>/queries/test.json`` — held-out queries (query, query_id, api_list, relevant APIs,
  ground_truth, reference_answer); ``<out>/test_query_ids/G1_demo.json`` — their ids.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Iterator
from typing import Any

from glpft.formats import write_text_atomic
from toolbench_multillm.demo_apis import api_docs
from toolbench_multillm.demo_expert import expert_answer
from toolbench_multillm.demo_scenarios import Scenario, make_scenario, relevant_apis

#: Query id of the first held-out query (training queries are numbered from 1).
TEST_ID_START = 100001


def _unique_scenarios(rng: random.Random, n: int, seen: set[str], unsolvable_rate: float) -> list[Scenario]:
    """``n`` scenarios whose queries are not in ``seen`` (which grows): held-out and training never overlap."""
    scenarios: list[Scenario] = []
    for _ in range(1000 * n + 1000):
        if len(scenarios) == n:
            return scenarios
        scenario = make_scenario(rng, solvable=rng.random() >= unsolvable_rate)
        if scenario.query not in seen:
            seen.add(scenario.query)
            scenarios.append(scenario)
    raise ValueError(f"cannot draw {n} distinct queries (the demo world has too few)")


def _test_query(query_id: int, scenario: Scenario) -> dict[str, Any]:
    """The held-out query record of ``<out>/queries/test.json`` (StableToolBench fields + ground truth)."""
    return {
        "query": scenario.query,
        "query_id": query_id,
        "api_list": api_docs(scenario.tools),
        "relevant APIs": relevant_apis(scenario),
        "ground_truth": scenario.values,
        "reference_answer": scenario.answer,
    }


def _demo_files(
    paths: dict[str, str],
    train: list[Scenario],
    train_rng: random.Random,
    test: list[Scenario],
    test_rng: random.Random,
) -> Iterator[tuple[str, Any]]:
    """(path, JSON value) of every file, in writing order: the expert draws from the rngs as it goes."""
    for i, scenario in enumerate(train, 1):
        yield os.path.join(paths["answer_dir"], f"{i}_demo.json"), expert_answer(scenario, train_rng)
    records, ids = [], {}
    for i, scenario in enumerate(test, TEST_ID_START):
        yield os.path.join(paths["test_answer_dir"], f"{i}_demo.json"), expert_answer(scenario, test_rng)
        records.append(_test_query(i, scenario))
        ids[str(i)] = 0
    yield paths["test_queries"], records
    yield paths["test_query_ids"], ids


def generate_demo_data(
    out_dir: str | os.PathLike,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 40,
    unsolvable_rate: float = 0.1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the demo data set (see the module docstring); returns its paths and counts.

    Test queries are all solvable, distinct from the training queries, and independent of ``n_train``
    (ids from ``TEST_ID_START``; training ids 1..n_train). Raises FileExistsError when ``out_dir``
    already holds demo files, unless ``overwrite`` (which first removes the old ones).
    """
    if not 0 < n_train < TEST_ID_START or n_test < 0:
        raise ValueError(f"need 0 < n_train < {TEST_ID_START} and n_test >= 0")
    out = os.fspath(out_dir)
    paths = {
        "answer_dir": os.path.join(out, "answer", "G1_answer"),
        "test_answer_dir": os.path.join(out, "test", "answer", "G1_answer"),
        "test_queries": os.path.join(out, "queries", "test.json"),
        "test_query_ids": os.path.join(out, "test_query_ids", "G1_demo.json"),
    }
    old = [os.path.join(d, f) for d in (paths["answer_dir"], paths["test_answer_dir"]) if os.path.isdir(d)
           for f in sorted(os.listdir(d)) if f.endswith("_demo.json")]  # fmt: skip
    old += [p for p in (paths["test_queries"], paths["test_query_ids"]) if os.path.exists(p)]
    if old and not overwrite:
        raise FileExistsError(f"{old[0]}: demo data exists (pass overwrite=True / --overwrite to replace it)")
    for p in old:
        os.remove(p)
    test_rng, train_rng = random.Random(f"demo-test-{seed}"), random.Random(f"demo-train-{seed}")
    seen: set[str] = set()
    test = _unique_scenarios(test_rng, n_test, seen, 0.0)
    train = _unique_scenarios(train_rng, n_train, seen, unsolvable_rate)
    for path, obj in _demo_files(paths, train, train_rng, test, test_rng):
        write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")
    return {**paths, "n_train": len(train), "n_test": len(test), "seed": seed}


def main(argv: list[str] | None = None) -> int:
    """The CLI of the module docstring; 2 with a one-line message when data exists or sizes are bad."""
    ap = argparse.ArgumentParser(prog="demo_data", description="Write the embedded demo's data set.")
    ap.add_argument("--out", required=True, help="output folder (answer/, test/, queries/, test_query_ids/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=40)
    ap.add_argument("--overwrite", action="store_true", help="replace existing demo files")
    args = ap.parse_args(argv)
    try:
        info = generate_demo_data(args.out, args.seed, args.n_train, args.n_test, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as e:
        print(f"demo_data: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['n_train']} training trajectories and {info['n_test']} test queries under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The SQLite response cache and `alpha-umi tools build-cache` (DESIGN §4.2, cache seeding)."""

from __future__ import annotations

import json
import sqlite3
import threading

from toolbench_multillm.cache import (
    ResponseCache,
    build_cache,
    calls_from_answer,
    canonical_input,
    main,
)


def test_canonical_input_ignores_key_order_and_whitespace():
    assert (
        canonical_input('{\n  "b": 1, "a": "é"\n}')
        == canonical_input({"a": "é", "b": 1})
        == '{"a":"é","b":1}'
    )
    assert canonical_input("") == canonical_input(None) == "{}"
    assert canonical_input("  not json ") == "not json"


def test_entry_seeded_without_category_is_found_by_a_request_with_one(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("Transitaires", "transitaire", '{"is_id": "X"}', "", "seeded", "trajectory")
    hit = cache.get("transitaires", "Transitaire", '{"is_id":"X"}', category="Logistics")
    assert hit is not None and hit.response == "seeded"
    cache.put(
        "transitaires", "transitaire", '{"is_id": "X"}', "", "with category", "upstream", category="Logistics"
    )
    assert (
        cache.get("transitaires", "transitaire", '{"is_id":"X"}', category="Logistics").response
        == "with category"
    )
    assert cache.get("transitaires", "transitaire", '{"is_id":"X"}').response == "seeded"
    assert cache.get("transitaires", "transitaire", '{"is_id":"Y"}', category="Logistics") is None


def test_request_names_find_entries_seeded_from_an_ambiguous_or_cut_function_name(tmp_path):
    """Answer files split ``search_for_products_for_amazon`` at the first ``_for_``; a request with the
    real names (api ``search_for_products``, tool ``amazon``) still hits."""
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("products_for_amazon", "search", "{}", "", "r", "trajectory")
    assert cache.get("amazon", "search_for_products", "{}").response == "r"
    assert cache.knows("amazon", "search_for_products")


def test_database_runs_in_wal_mode_and_survives_concurrent_writers(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    assert cache.journal_mode() == "wal"

    def writer(n):
        for i in range(50):
            cache.put("tool", "api", {"n": n, "i": i}, "", f"{n}-{i}", "test")
            assert cache.get("tool", "api", {"i": i, "n": n}).response == f"{n}-{i}"

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 200
    assert not cache.put("tool", "api", {"n": 0, "i": 0}, "", "again", "test")  # first entry wins
    assert cache.put("tool", "api", {"n": 0, "i": 0}, "", "again", "test", replace=True)


def test_calls_skip_hallucinations_finish_and_environment_errors():
    answer = {
        "answer_generation": {
            "function": [{"name": "a_for_t"}, {"name": "Finish"}],
            "train_messages": [
                [
                    {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "a_for_t", "arguments": "{}"},
                    },
                    {"role": "function", "name": "a_for_t", "content": '{"error": "", "response": "ok"}'},
                    {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "b_for_t", "arguments": "{}"},
                    },
                    {
                        "role": "function",
                        "name": "b_for_t",
                        "content": '{"error": "", "response": "made up"}',
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "a_for_t", "arguments": '{"x": 1}'},
                    },
                    {
                        "role": "function",
                        "name": "a_for_t",
                        "content": '{"error": "Timeout error...boom", "response": ""}',
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "Finish", "arguments": "{}"},
                    },
                ]
            ],
        }
    }
    assert list(calls_from_answer(answer)) == [("t", "a", "{}", "", "ok")]


def test_build_cache_from_reference_answers_holds_every_real_observation(reference_dir, tmp_path, capsys):
    answers = reference_dir / "toolbench_data_example/answer"
    path = tmp_path / "cache.sqlite"
    assert main(["build-cache", "--answers", str(answers), "--cache", str(path)]) == 0
    out = capsys.readouterr().out
    assert "files" in out and "entries in cache" in out
    cache = ResponseCache(path)
    n = len(cache)
    assert n >= 20
    # every seeded call of every answer file is answered by the cache, with its recorded response
    recorded: dict[tuple, set] = {}
    for answer_file in sorted(answers.rglob("*.json")):
        for tool, api, args, error, response in calls_from_answer(json.loads(answer_file.read_text())):
            recorded.setdefault((tool, api, canonical_input(args)), set()).add((error, response))
    for (tool, api, args), answers_seen in recorded.items():
        hit = cache.get(tool, api, args, category="AnyCategory")
        assert hit is not None and hit.source == "trajectory" and (hit.error, hit.response) in answers_seen
    assert len(recorded) == n
    hit = cache.get("transitaires", "transitaire", '{"is_id": "ACT_AGENCE_CALEDONIENNE_DE_TRANSIT"}')
    assert "'codePostal': '98800'" in hit.response
    # rebuilding is idempotent
    counts = build_cache(str(answers), str(path))
    assert counts["new entries"] == 0 and counts["entries in cache"] == n
    assert sqlite3.connect(path).execute("SELECT COUNT(DISTINCT source) FROM responses").fetchone() == (1,)


def test_build_cache_reports_a_missing_folder(tmp_path, capsys):
    assert (
        main(["build-cache", "--answers", str(tmp_path / "nope"), "--cache", str(tmp_path / "c.sqlite")]) == 2
    )
    assert "no such directory" in capsys.readouterr().err

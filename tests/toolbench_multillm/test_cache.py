"""The SQLite response cache and `alpha-umi tools build-cache` (DESIGN §4.2, cache seeding)."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from glpft.formats import FormatError
from toolbench_multillm.cache import (
    ResponseCache,
    UnkeyableInput,
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


def test_build_cache_on_a_folder_without_answer_files_or_calls_fails_in_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "c.sqlite"
    assert main(["build-cache", "--answers", str(empty), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no answer files" in err and str(empty) in err
    no_calls = tmp_path / "no_calls"
    no_calls.mkdir()
    (no_calls / "a.json").write_text(
        json.dumps({"answer_generation": {"function": [], "train_messages": []}})
    )
    (no_calls / "b.json").write_text("{broken")
    assert main(["build-cache", "--answers", str(no_calls), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no tool calls found in 2 answer files (1 unreadable)" in err
    assert not cache.exists()  # nothing to store: no empty cache left behind


def test_build_cache_skips_and_counts_unreadable_answer_files(reference_dir, tmp_path, capsys, caplog):
    answers = tmp_path / "answers"
    answers.mkdir()
    good = next((reference_dir / "toolbench_data_example/answer").rglob("*.json"))
    (answers / "good.json").write_bytes(good.read_bytes())
    (answers / "deep.json").write_text("[" * 100_000)
    (answers / "huge.json").write_text('{"n": 1' + "0" * 5000 + "}")
    (answers / "binary.json").write_bytes(b"\xff\xfe\x00\xd8")
    (answers / "shape.json").write_text(
        json.dumps({"answer_generation": {"function": 5, "train_messages": 7}})
    )
    assert main(["build-cache", "--answers", str(answers), "--cache", str(tmp_path / "c.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "unreadable files  3" in out and "files             2" in out
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3 and all("\n" not in m for m in skipped)
    assert any("deep.json" in m and "nested too deeply" in m for m in skipped)


def test_cache_paths_that_cannot_hold_a_cache_fail_in_one_line(tmp_path, capsys):
    answers = tmp_path / "answers"
    answers.mkdir()
    (tmp_path / "notes.txt").write_text("not a database")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE responses (x TEXT)").connection.commit()
    for path, reason in [
        (tmp_path, "is a folder"),
        (tmp_path / "notes.txt", "not an SQLite database"),
        (tmp_path / "missing" / "c.sqlite", "does not exist"),
        (other, "is not a tool cache"),
    ]:
        assert main(["build-cache", "--answers", str(answers), "--cache", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and reason in err, err
        with pytest.raises(FormatError, match=reason):
            ResponseCache(path)


def test_the_cache_never_raises_on_what_a_backend_or_request_may_hold(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    deep = json.loads("[" * 900 + "]" * 900)
    assert cache.put("t", "a", {"q": "\ud800"}, "err \udfff", "resp \ud800", "upstream", category="c\ud800")
    hit = cache.get("t", "a", {"q": "\ud800"}, category="c\ud800")
    assert (hit.error, hit.response, hit.source) == ("err \ufffd", "resp \ufffd", "upstream")
    assert cache.get("t", "a", {"q": "\ufffd"}, category="c\ud800") is None  # escaped keys stay distinct
    assert (
        cache.put("t", "a", '{"q": "\\ud800"}', "", "same input", "upstream", category="c\ud800") is False
    )  # same input
    assert cache.put("t", "a", "raw \ud800 text", "", "r", "upstream") and cache.get(
        "t", "a", "raw \ud800 text"
    )
    for unkeyable in ({1, 2}, {"n": float("nan"), 1: "mixed key types"}, _nested(5000)):
        assert cache.put("t", "a", unkeyable, "", "r", "upstream") is False
        assert cache.get("t", "a", unkeyable) is None
    assert cache.put("t", "a", "[" * 5000, "", "deep text", "upstream")  # not JSON: keyed as text
    assert cache.get("t", "a", "[" * 5000).response == "deep text"
    assert cache.put("t", "a", '{"n": 1' + "0" * 5000 + "}", "", "huge", "upstream")
    assert (
        cache.put("t", "a", deep, "", "900 deep", "upstream")
        and cache.get("t", "a", deep).response == "900 deep"
    )
    assert (
        cache.put_many([("", "t", "b", _nested(5000), "", "r", "x"), ("", "t", "b", "{}", "", "\ud800", "x")])
        == 1
    )
    assert cache.get("t", "b", "{}").response == "\ufffd"
    with pytest.raises(UnkeyableInput):
        canonical_input({1, 2})


def _nested(n: int) -> list:
    value: list = []
    for _ in range(n):
        value = [value]
    return value


def test_calls_from_answer_skips_what_has_no_expected_shape():
    chain = [
        {"role": "assistant", "function_call": {"name": "a_for_t", "arguments": "{}"}},
        {"role": "function", "content": {"error": _nested(5000), "response": "x"}},
        {"role": "assistant", "function_call": {"name": "a_for_t", "arguments": '{"k": 1}'}},
        {"role": "function", "content": '{"error": "", "response": "ok"}'},
    ]
    for bad in (5, None, [], {"answer_generation": {"function": 5, "train_messages": 7}}):
        assert list(calls_from_answer(bad)) == []
    answer = {
        "answer_generation": {
            "function": [{"name": "a_for_t"}, {"name": {"x": 1}}],
            "train_messages": [7, chain],
        }
    }
    assert list(calls_from_answer(answer)) == [("t", "a", '{"k": 1}', "", "ok")]


def test_responses_keep_their_json_type_and_text_stays_text(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    assert cache.put("t", "a", "{}", "", {"temp": 21, "days": [1, 2]}, "upstream")
    assert cache.put("t", "b", "{}", "", '{"temp": 21}', "upstream")  # JSON *text* is text
    assert cache.put("t", "c", "{}", "", ["\ud800 odd"], "upstream")  # stored escaped, read back exactly
    assert cache.get("t", "a", "{}").response == {"temp": 21, "days": [1, 2]}
    assert cache.get("t", "b", "{}").response == '{"temp": 21}'
    assert cache.get("t", "c", "{}").response == ["\ud800 odd"]
    assert not cache.put("t", "d", "{}", "", {1, 2}, "upstream")  # no JSON text: not stored
    rows = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT api, json FROM responses ORDER BY api")
    assert list(rows) == [("a", 1), ("b", 0), ("c", 1)]

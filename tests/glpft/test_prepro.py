"""ToolBench → GLPFT preprocessing: byte parity with the original, its defects fixed, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glpft import prepro
from glpft import prompts as P
from glpft.formats import FormatError, JsonListWriter, iter_json_list

ROLE_FILES = [f"train_{r}.json" for r in P.MODEL_ROLES]
SYSTEM = {"role": "system", "content": "You are AutoGPT ..."}

# --- synthetic raw ToolBench answers -----------------------------------------------------------

FUNCTIONS = [
    {
        "name": "get_city_for_geo",
        "description": "Get a city",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "city name"}, "n": {"type": "number"}},
        },
    },
    {"name": "Finish", "description": "finish", "parameters": {"type": "object", "properties": {}}},
]


def call(name, args, content="thinking"):
    return {"role": "assistant", "content": content, "function_call": {"name": name, "arguments": args}}


def obs(response):
    return {"role": "function", "name": "x", "content": json.dumps({"error": "", "response": response})}


def finish(answer):
    return call("Finish", json.dumps({"return_type": "give_answer", "final_answer": answer}), content="done")


GIVE_UP = call("Finish", json.dumps({"return_type": "give_up_and_restart"}), content="I give up")


def answer_file(messages, query="Where is Paris?"):
    chain = [SYSTEM, {"role": "user", "content": query}] + messages
    return {
        "answer_generation": {"query": query, "function": FUNCTIONS, "train_messages": [chain[:2], chain]}
    }


GOOD_CHAIN = [call("get_city_for_geo", '{"name": "Paris"}'), obs("France"), finish("In France.")]


def write_data_dir(root: Path, files: dict[str, object], test_ids: dict | None = None) -> Path:
    for rel, content in files.items():
        path = root / "answer" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    if test_ids is not None:
        (root / "test_query_ids").mkdir(parents=True, exist_ok=True)
        (root / "test_query_ids" / "G1_instruction.json").write_text(json.dumps(test_ids))
    return root


def load(out: Path, name: str):
    return json.loads((out / name).read_text())


# --- byte parity with the published α-UMi data -------------------------------------------------


@pytest.fixture(scope="module")
def parity_run(reference_dir, tmp_path_factory):
    ref = reference_dir / "alpha_umi" / "train-example"
    out = tmp_path_factory.mktemp("parity")
    prepro.run(str(out), stage1_file=str(ref / "raw_data" / "raw_data_stage_1.json"), progress=False)
    return ref, out


@pytest.mark.parametrize(
    "name",
    ["raw_data/raw_data_stage_2.json", "train_planner.json", "train_caller.json", "train_summarizer.json"],
)
def test_stage2_and_role_files_are_byte_identical_to_the_original(parity_run, name):
    ref, out = parity_run
    assert (out / name).read_bytes() == (ref / name).read_bytes()


def test_backbone_matches_original_except_stale_give_up_prompts(parity_run):
    ref, out = parity_run
    ours, theirs = load(out, "train_backbone.json"), load(ref, "train_backbone.json")
    assert len(ours) == len(theirs) == 79
    differing = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    give_ups = [i for i, row in enumerate(ours) if row["target"].endswith("\nconclusion: give up.")]
    assert differing == give_ups and len(give_ups) == 6
    for i in differing:
        # only the prompt differs: the original reused the previous sample's (stale) input …
        assert {k for k in ours[i] if ours[i][k] != theirs[i][k]} == {"input"}
        assert theirs[i]["input"] == theirs[i - 1]["input"]

        # … ours is the backbone prompt of this step's own history: it ends with this step's last turn
        # and extends the history of the previous sample of the same trajectory.
        def hist(text):
            return text.split("\nThe conversation history is:\n", 1)[1].split(
                "\nYou should answer the action", 1
            )[0]

        last = ours[i]["history"][-1]
        assert hist(ours[i]["input"]).endswith(P.render_turn(last["from"], last["value"]))
        if ours[i]["history"][: len(ours[i - 1]["history"])] == ours[i - 1]["history"]:
            assert hist(ours[i]["input"]).startswith(
                hist(ours[i - 1]["input"]) + "assistant: " + ours[i - 1]["target"] + "</s>"
            )


def test_all_stage1_trajectories_are_kept(parity_run):
    _, out = parity_run
    assert len(load(out, "raw_data/raw_data_stage_2.json")) == 20


# --- defects of the original, fixed --------------------------------------------------------------


def test_all_trajectories_are_kept_not_only_the_first_20(tmp_path):
    # fixes: the original wrote data[:20] after stage 1.
    files = {f"G1_answer/{i}_x.json": answer_file(GOOD_CHAIN) for i in range(25)}
    data = write_data_dir(tmp_path / "data", files)
    s = prepro.run(str(tmp_path / "out"), data_dir=str(data), exclude_test_ids=False, progress=False)
    assert s.kept == 25
    assert len(load(tmp_path / "out", "raw_data/raw_data_stage_1.json")) == 25
    assert len(load(tmp_path / "out", "train_summarizer.json")) == 25


def test_give_up_backbone_sample_uses_its_own_history_even_as_first_step(tmp_path):
    # fixes: the original crashed here (no previous prompt) or reused a stale one.
    record = prepro.stage1_from_answer(answer_file([GIVE_UP]), "mem")
    stage2 = prepro.stage2_from_stage1(record, "mem")
    samples = prepro.role_samples(stage2)
    (bb,) = samples["backbone"]
    assert bb["target"] == "I give up\nconclusion: give up."
    expected = P.backbone_prompt(record["tools"], "user: Where is Paris?</s>")
    assert bb["input"] == expected
    assert samples["planner"][0]["target"] == "I give up\n " + P.NEXT_GIVE_UP


def test_text_only_assistant_message_is_counted_and_dropped_by_default():
    chain = [{"role": "assistant", "content": "Let me think."}] + GOOD_CHAIN
    record = prepro.stage1_from_answer(answer_file(chain), "mem")
    stats = prepro.Counter()
    conv = prepro.stage2_from_stage1(record, "mem", stats=stats)["conversations"]
    assert stats["text_only_assistant"] == 1
    assert [t["from"] for t in conv] == [
        "user",
        "assistant",
        "caller",
        "observation",
        "assistant",
        "conclusion",
    ]
    assert "Let me think." not in json.dumps(conv)


def test_text_only_assistant_message_can_be_merged_into_the_next_thought():
    chain = [{"role": "assistant", "content": "Let me think."}] + GOOD_CHAIN
    record = prepro.stage1_from_answer(answer_file(chain), "mem")
    conv = prepro.stage2_from_stage1(record, "mem", text_only="merge")["conversations"]
    assert conv[1] == {"from": "assistant", "value": "Let me think.\nthinking\n " + P.NEXT_CALLER}


def test_dict_typed_finish_arguments_do_not_crash():
    # fixes: dict arguments crashed the original's substring fallback.
    chain = [call("Finish", {"return_type": "give_answer", "final_answer": "42"})]
    conv = prepro.stage2_from_stage1(prepro.stage1_from_answer(answer_file(chain), "mem"), "mem")[
        "conversations"
    ]
    assert conv[-1] == {"from": "conclusion", "value": "42"}
    chain = [call("Finish", {"final_answer": "7"})]  # no return_type → fallback on the JSON text
    conv = prepro.stage2_from_stage1(prepro.stage1_from_answer(answer_file(chain), "mem"), "mem")[
        "conversations"
    ]
    assert conv[-1] == {"from": "conclusion", "value": "7"}


def test_unparsable_finish_arguments_use_the_substring_fallback():
    chain = [call("Finish", '{"return_type": "give_answer", "final_answer": "It is "big"}')]
    conv = prepro.stage2_from_stage1(prepro.stage1_from_answer(answer_file(chain), "mem"), "mem")[
        "conversations"
    ]
    assert conv[-1]["value"] == 'It is "big'


def test_hallucinated_caller_turn_is_left_out_of_caller_data_only():
    chain = [call("nope", '{"a": 1}'), obs("bad"), *GOOD_CHAIN]
    chain[0]["function_call"]["name"] = "invalid_hallucination_function_name"
    stage2 = prepro.stage2_from_stage1(prepro.stage1_from_answer(answer_file(chain), "mem"), "mem")
    s = prepro.role_samples(stage2)
    assert len(s["caller"]) == 1 and len(s["planner"]) == 2 and len(s["backbone"]) == 3
    assert P.HALLUCINATED_CALL not in s["caller"][0]["input"]
    assert P.HALLUCINATED_CALL in s["planner"][1]["input"]


def test_tool_schema_conversion_truncates_like_the_original():
    long = {
        "name": "x" * 70,
        "description": "d" * 300,
        "parameters": {
            "properties": {"a": {"type": "string", "description": "e" * 300}, "b": {"type": "number"}}
        },
    }
    tool = P.tool_entry(long, "mem")
    assert tool["Name"] == "x" * 64 and len(tool["function"]) == 256
    assert tool["input"] == {"a": "string, " + "e" * 256, "b": "number"}


# --- bad input ---------------------------------------------------------------------------------


def bad_data_dir(root: Path) -> Path:
    return write_data_dir(
        root,
        {
            "G1_answer/1_ok.json": answer_file(GOOD_CHAIN),
            "G1_answer/2_notjson.json": "{not json",
            "G1_answer/3_noag.json": {"something": 1},
            "G1_answer/4_notm.json": {"answer_generation": {"query": "q", "function": []}},
            "G1_answer/5_badmsg.json": answer_file([{"content": "no role"}]),
            "G2_answer/6_ok.json": answer_file(GOOD_CHAIN, query="Second?"),
            "G2_answer/7_test.json": answer_file(GOOD_CHAIN, query="A test query"),
        },
        test_ids={"7": 1},
    )


def test_bad_files_are_reported_counted_and_skipped_without_losing_neighbours(tmp_path, caplog):
    data = bad_data_dir(tmp_path / "data")
    s = prepro.run(str(tmp_path / "out"), data_dir=str(data), progress=False)
    assert (s.read, s.kept, s.excluded) == (7, 2, 1)
    assert dict(s.skipped) == {
        "not JSON": 1,
        "missing 'answer_generation'": 1,
        "missing 'train_messages'": 1,
        "malformed message": 1,
    }
    assert (
        "2_notjson.json: not valid JSON" in caplog.text
        and "5_badmsg.json: chains[2]: malformed message" in caplog.text
    )
    stage1 = load(tmp_path / "out", "raw_data/raw_data_stage_1.json")
    assert [r["instruction"] for r in stage1] == ["Where is Paris?", "Second?"]


def test_strict_exits_non_zero_only_when_something_was_skipped(tmp_path, capsys):
    data = bad_data_dir(tmp_path / "data")
    assert prepro.main(["--data-dir", str(data), "--out-dir", str(tmp_path / "a"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test ids excluded" in out and "skipped (bad input)" in out
    assert (
        prepro.main(["--data-dir", str(data), "--out-dir", str(tmp_path / "b"), "--quiet", "--strict"]) == 1
    )
    good = write_data_dir(tmp_path / "good", {"G1_answer/1_ok.json": answer_file(GOOD_CHAIN)}, test_ids={})
    assert (
        prepro.main(["--data-dir", str(good), "--out-dir", str(tmp_path / "c"), "--quiet", "--strict"]) == 0
    )


def test_missing_test_query_ids_is_a_clear_error_unless_disabled(tmp_path, capsys):
    data = write_data_dir(tmp_path / "data", {"G1_answer/1_ok.json": answer_file(GOOD_CHAIN)})
    assert prepro.main(["--data-dir", str(data), "--out-dir", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        "test_query_ids: test query ids not found" in err
        and "--no-test-exclusion" in err
        and len(err.strip().splitlines()) == 1
    )
    assert (
        prepro.main(
            ["--data-dir", str(data), "--out-dir", str(tmp_path / "o"), "--quiet", "--no-test-exclusion"]
        )
        == 0
    )


def test_existing_outputs_are_not_overwritten_without_the_flag(tmp_path, capsys):
    data = write_data_dir(tmp_path / "data", {"G1_answer/1_ok.json": answer_file(GOOD_CHAIN)}, test_ids={})
    args = ["--data-dir", str(data), "--out-dir", str(tmp_path / "o"), "--quiet"]
    assert prepro.main(args) == 0
    assert prepro.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert prepro.main(args + ["--overwrite"]) == 0


def test_parallel_run_writes_the_same_bytes_as_a_serial_run(tmp_path):
    files = {
        f"G{1 + i % 3}_answer/{i}_x.json": answer_file(GOOD_CHAIN if i % 2 else [GIVE_UP], query=f"q{i}")
        for i in range(40)
    }
    data = write_data_dir(tmp_path / "data", files, test_ids={"3": 1})
    prepro.run(str(tmp_path / "serial"), data_dir=str(data), progress=False)
    prepro.run(str(tmp_path / "par"), data_dir=str(data), num_proc=2, progress=False)
    for name in ["raw_data/raw_data_stage_1.json", "raw_data/raw_data_stage_2.json", *ROLE_FILES]:
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "par" / name).read_bytes(), name
    # row order follows sorted group then sorted file names
    ids = [r["instruction"] for r in load(tmp_path / "serial", "raw_data/raw_data_stage_1.json")]
    assert ids[:3] == ["q0", "q12", "q15"]


def test_stage1_file_that_is_not_a_json_list_is_a_one_line_error(tmp_path):
    bad = tmp_path / "s1.json"
    bad.write_text('[{"tools": [], "instruction": "q", "chains": []}, {oops')
    with pytest.raises(FormatError, match="s1.json: not a valid JSON list"):
        prepro.run(str(tmp_path / "o"), stage1_file=str(bad), progress=False)


# --- real ToolBench answers ----------------------------------------------------------------------


def test_full_run_on_raw_toolbench_answers_keeps_the_invariants(reference_dir, tmp_path):
    data = reference_dir / "toolbench_data_example"
    s = prepro.run(str(tmp_path), data_dir=str(data), exclude_test_ids=False, num_proc=2, progress=False)
    assert s.read == 15 and s.kept == 13 and dict(s.skipped) == {"missing 'train_messages'": 2}
    stage2 = load(tmp_path, "raw_data/raw_data_stage_2.json")
    assert len(stage2) == 13
    planner, caller = load(tmp_path, "train_planner.json"), load(tmp_path, "train_caller.json")
    summarizer, backbone = load(tmp_path, "train_summarizer.json"), load(tmp_path, "train_backbone.json")
    assert len(planner) == len(backbone) == s.samples["planner"] > 0
    assert s.stats["finish"] + s.stats["give_up"] == 13
    for row in planner:
        assert row["input"].endswith(" assistant: ") and row["target"].endswith(P.NEXT_MARKERS)
        assert row["input"].startswith("You have assess to the following apis:\n" + P.tool_doc(row["tools"]))
    for row in caller:
        assert row["target"].startswith("Action: ") and row["input"].endswith(" caller: ")
        assert row["history"][-1]["from"] == "assistant"
    for row in summarizer:
        assert row["input"].endswith(" conclusion: ") and row["target"] != "none"
    for row in backbone:
        assert P.NEXT_CALLER not in row["target"] and P.NEXT_CONCLUSION not in row["target"]
    # every history is a prefix of its trajectory's conversation
    convs = [json.dumps(r["conversations"]) for r in stage2]
    for row in planner + caller + summarizer:
        assert any(c.startswith(json.dumps(row["history"])[:-1]) for c in convs)


# --- the streaming writer/reader -----------------------------------------------------------------


@pytest.mark.parametrize("rows", [[], [{"a": "é\n", "b": [1, {"c": None}]}], [1, "x", {"k": {}}]])
def test_json_list_writer_matches_json_dump_indent_2(tmp_path, rows):
    path = tmp_path / "x.json"
    with JsonListWriter(path) as w:
        for r in rows:
            w.write(r)
    assert path.read_text() == json.dumps(rows, indent=2)
    assert list(iter_json_list(path)) == rows


def test_json_list_writer_leaves_target_untouched_on_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[]")
    with pytest.raises(RuntimeError):
        with JsonListWriter(path) as w:
            w.write({"a": 1})
            raise RuntimeError("boom")
    assert path.read_text() == "[]" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("content", [{"a": 1}, "text", 3, None, True])
def test_a_stage1_file_that_is_not_a_list_is_a_one_line_error_fixes_empty_output(tmp_path, capsys, content):
    src = tmp_path / "stage1.json"
    src.write_text(json.dumps(content))
    assert prepro.main(["--stage1-file", str(src), "--out-dir", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("alpha-umi prepro: error: ") and "expected a JSON list" in err and str(src) in err


def test_records_whose_tools_are_not_objects_are_skipped_and_nothing_usable_is_an_error(tmp_path, capsys):
    src = tmp_path / "stage1.json"
    src.write_text(json.dumps([{"tools": [1, "x"], "instruction": "q", "chains": []}]))
    assert prepro.main(["--stage1-file", str(src), "--out-dir", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no usable trajectory" in err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert prepro.main(["--stage1-file", str(empty), "--out-dir", str(tmp_path / "o2"), "--quiet"]) == 1

"""Static inference (glpft.infer): samples, routing, prediction strings, files, errors, sharding."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from glpft import infer as I
from glpft import prompts as P
from glpft import steps as S
from glpft.engines import encode_prompt
from glpft.parsing import parse_step

TOOLS = [
    {
        "Name": "get_weather_for_weather",
        "function": "Get the weather of a city",
        "input": {"city": "string, city name"},
    }
]


def conv(*turns):
    return [{"from": r, "value": v} for r, v in turns]


RECORDS = [
    {
        "tools": TOOLS,
        "instruction": "What is the weather in Paris?",
        "conversations": conv(
            ("user", "What is the weather in Paris?"),
            ("assistant", "I should call the weather api. Next: caller."),
            ("caller", 'Action: get_weather_for_weather\nAction Input: {"city": "Paris"}'),
            ("observation", '{"temp": 21}'),
            ("assistant", "thinking without a route"),
            ("assistant", "I know the answer. Next: conclusion."),
            ("conclusion", "It is 21 degrees in Paris."),
        ),
    },
    {
        "tools": TOOLS,
        "instruction": "Weather on Mars?",
        "conversations": conv(("user", "Weather on Mars?"), ("assistant", "No api for Mars. Next: give up.")),
    },
]


@pytest.fixture()
def small_test_file(tmp_path) -> Path:
    path = tmp_path / "test" / "small.json"
    path.parent.mkdir()
    path.write_text(json.dumps(RECORDS))
    return path


def args_for(model_dir, data, out, *extra) -> list[str]:
    return [
        *(f"--{r}_model_name_or_path={model_dir}" for r in ("planner", "caller", "summarizer")),
        f"--data_path={data}",
        f"--output_dir={out}",
        "--max_new_tokens=4",
        *extra,
    ]


# --- samples ------------------------------------------------------------------------------------


def test_planner_samples_follow_design_rules():
    samples = S.build_steps(RECORDS)
    assert [s.reference for s in samples] == [
        "assistant: I should call the weather api. Next: caller.</s>caller: Action: get_weather_for_weather"
        '\nAction Input: {"city": "Paris"}</s>',
        "assistant: I know the answer. Next: conclusion.</s>conclusion: It is 21 degrees in Paris.</s>",
        "No api for Mars. Next: give up.",
    ]
    second = samples[1]
    turns = RECORDS[0]["conversations"]
    assert second.history == turns[:5]
    assert second.dispatch == P.history_text(turns[:5])  # the unrouted assistant turn stays in history
    assert second.prompt.text == P.planner_prompt(TOOLS, second.dispatch)
    assert not second.prompt.text.startswith(P.TRAIN_PREFIX)
    prefixed = S.build_steps(RECORDS, prefix=P.TRAIN_PREFIX)
    assert prefixed[1].prompt.text == P.TRAIN_PREFIX + second.prompt.text


def test_out_of_domain_steps_and_references(reference_dir):
    records = S.read_test_records(str(reference_dir / "alpha_umi" / "test" / "out_of_domain.json"))
    samples = S.build_steps(records)
    assert len(records) == 400
    kinds = Counter(parse_step(s.reference).plan for s in samples)
    assert kinds == {"call": 1146, "finish": 294, "give up": 107}
    it = iter(samples)
    for rec in records:  # an independent spelling of DESIGN §3.6, turn by turn
        turns = rec["conversations"]
        for j, turn in enumerate(turns):
            value = turn["value"]
            if turn["from"] != "assistant" or not any(m in value for m in P.NEXT_MARKERS):
                continue
            s = next(it)
            if P.NEXT_GIVE_UP in value and P.NEXT_CALLER not in value and P.NEXT_CONCLUSION not in value:
                expected = value
            else:
                nxt = turns[j + 1]
                expected = "assistant: " + value + "</s>" + nxt["from"] + ": " + nxt["value"] + "</s>"
            assert s.reference == expected
            assert s.history == turns[:j]
            assert s.dispatch == P.history_text(turns[:j])
            assert s.prompt.text == P.planner_prompt(rec["tools"], s.dispatch)
    assert next(it, None) is None


def test_backbone_samples_use_merged_history_and_targets():
    samples = S.build_steps(RECORDS, "backbone")
    assert [s.reference for s in samples] == [
        'I should call the weather api.\nAction: get_weather_for_weather\nAction Input: {"city": "Paris"}',
        "I know the answer.\nconclusion: It is 21 degrees in Paris.",
        "No api for Mars.\nconclusion: give up.",
    ]
    assert samples[1].dispatch == (
        "user: What is the weather in Paris?</s>assistant: " + samples[0].reference + "</s>"
        'observation: {"temp": 21}assistant: thinking without a route</s>'
    )
    assert samples[1].prompt.text == P.backbone_prompt(TOOLS, samples[1].dispatch)


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, route, thought",
    [
        ("Call it. Next: caller. trailing", "caller", "Call it. Next: caller."),
        ("Done. Next: conclusion. more", "conclusion", "Done. Next: conclusion."),
        ("Hopeless. Next: give up. x", "give up", "Hopeless. Next: give up."),
        ("a Next: caller. b Next: give up.", "give up", "a Next: caller. b Next: give up."),
        ("no marker at all", "caller", "no marker at allNext: caller."),
    ],
)
def test_routing_cuts_after_the_first_marker(output, route, thought):
    step = S.build_steps(RECORDS)[0]
    assert S.route(step, output) == route
    sample = step.record()
    if route == "give up":
        assert sample["predictions"] == thought and "planner_prediction" not in sample
        return
    assert sample["planner_prediction"] == thought
    history = sample["dispath"] + "planner: " + thought + "</s>"
    if route == "caller":
        expected = P.TEMPLATES["toolbench_caller"].replace("{doc}", P.tool_doc(TOOLS))
        expected = expected.replace("{tool_names}", P.tool_names(TOOLS)).replace("{thought}", thought)
        assert sample["model_input_for_caller"] == expected.replace("{history}", history) + " caller: "
    else:
        expected = P.TEMPLATES["toolbench_summarizer"].replace("{history}", history)
        assert sample["model_input_for_summarizer"] == expected + " conclusion: "


def test_prediction_strings_keep_the_paper_spelling():
    assert S.prediction_string("caller", "t Next: caller.", "Action: a") == (
        "asssitant: t Next: caller.</s>caller: Action: a"
    )
    assert S.prediction_string("conclusion", "t", "ans") == "asssitant: t</s>conclusion: ans"
    assert S.prediction_string("give up", "t Next: give up.", "ignored") == "t Next: give up."


def test_pipeline_orders_callers_then_give_ups_then_conclusions():
    samples = S.build_steps(RECORDS * 2)
    canned = {"planner": ["go Next: caller.", "end Next: conclusion.", "stop Next: give up."] * 2}

    def fake_generate(role, batch, prompts):
        assert all(p is not None for p in prompts) and len(prompts) == len(batch)
        return canned["planner"] if role == "planner" else ["." if role == "caller" else "ok"] * len(batch)

    by_route = I.run_pipeline(samples, fake_generate)
    callers, give_ups, summaries = by_route["caller"], by_route["give up"], by_route["conclusion"]
    assert [s.index for s in callers] == [0, 3]
    assert [s.index for s in give_ups] == [2, 5]
    assert [s.index for s in summaries] == [1, 4]
    assert callers[0].prediction == "asssitant: go Next: caller.</s>caller: ."
    assert summaries[0].prediction == "asssitant: end Next: conclusion.</s>conclusion: ok"


def test_history_truncation_keeps_tool_docs(tiny_model_dir):
    from glpft.modeling import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    prompt = S.build_steps(RECORDS)[1].prompt
    ids = tok.encode(prompt.text)
    budget = len(ids) - 10
    left = encode_prompt(tok, prompt, budget, "left")
    assert left == ids[-budget:]
    kept = encode_prompt(tok, prompt, budget, "history")
    assert len(kept) == budget
    head, tail = prompt.head, prompt.tail
    assert kept[: len(tok.encode(head))] == tok.encode(head)  # BOS + template + tool docs survive
    assert tok.decode(kept).endswith(tail)


# --- runs, files, errors ------------------------------------------------------------------------


def test_infer_writes_predictions_in_the_original_format(tiny_model_dir, small_test_file, tmp_path):
    out = tmp_path / "out"
    argv = args_for(tiny_model_dir, small_test_file.parent, out, "--per_device_eval_batch_size=2")
    argv += ["--assistant_prompt_type=toolbench_planner", "--conclusion_prompt_type=toolbench_summarizer"]
    assert I.main(argv) == 0
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == 3
    base = {"tools", "instruction", "history", "dispath", "model_input", "reference", "predictions"}
    for row in rows:
        extra = set(row) - base
        assert extra in (set(), {"planner_prediction", "model_input_for_caller"}, {
            "planner_prediction", "model_input_for_summarizer"})  # fmt: skip
        if "planner_prediction" in row:
            assert row["predictions"].startswith("asssitant: " + row["planner_prediction"] + "</s>")
    metrics = pytest.importorskip("glpft.metrics")
    result = metrics.compute_metrics(metrics.read_predictions(out / "predictions.json"))
    assert 0.0 <= result["plan_em"] <= 1.0
    # greedy decoding is deterministic; an existing file needs --overwrite_output_dir
    first = (out / "predictions.json").read_text()
    assert I.main(argv) == 2
    assert I.main(argv + ["--overwrite_output_dir"]) == 0
    assert (out / "predictions.json").read_text() == first


def test_backbone_baseline_run(tiny_model_dir, small_test_file, tmp_path):
    out = tmp_path / "bb"
    argv = [f"--backbone_model_name_or_path={tiny_model_dir}", f"--data_path={small_test_file}"]
    assert I.main(argv + [f"--output_dir={out}", "--max_new_tokens=4", "--prompt_prefix"]) == 0
    rows = json.loads((out / "predictions.json").read_text())
    assert [r["reference"] for r in rows] == [s.reference for s in S.build_steps(RECORDS, "backbone")]
    assert all(r["model_input"].startswith("system: You have assess") for r in rows)
    metrics = pytest.importorskip("glpft.metrics")
    metrics.compute_metrics(metrics.read_predictions(out / "predictions.json"), mode="backbone")


def test_both_spellings_of_prompt_type_flags_parse(tiny_model_dir):
    common = args_for(tiny_model_dir, "d.json", "o")
    _, data, _ = I.parse_args(common + ["--assistant_prompt_type=a", "--conclusion_prompt_type=c"])
    assert (data.planner_prompt_type, data.summarizer_prompt_type) == ("a", "c")
    _, data, _ = I.parse_args(common + ["--planner_prompt_type=p", "--summarizer_prompt_type=s"])
    assert (data.planner_prompt_type, data.summarizer_prompt_type) == ("p", "s")


def one_line_error(capsys, argv) -> str:
    assert I.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alpha-umi infer: error: ") and "\n" not in err
    return err


def test_bad_inputs_give_one_line_errors(tiny_model_dir, small_test_file, tmp_path, capsys):
    role_file = tmp_path / "train_planner.json"
    role_file.write_text(json.dumps([{"tools": [], "history": [], "input": "x", "target": "y"}]))
    err = one_line_error(capsys, args_for(tiny_model_dir, role_file, tmp_path / "o"))
    assert str(role_file) in err and "instruction" in err

    no_tok = tmp_path / "no_tokenizer"
    no_tok.mkdir()
    shutil.copy(Path(tiny_model_dir) / "config.json", no_tok / "config.json")
    err = one_line_error(capsys, args_for(no_tok, small_test_file, tmp_path / "o"))
    assert str(no_tok) in err and "tokenizer" in err

    err = one_line_error(capsys, args_for(tiny_model_dir, tmp_path / "missing.json", tmp_path / "o"))
    assert "missing.json" in err

    err = one_line_error(capsys, args_for(tiny_model_dir, small_test_file, tmp_path / "o", "--decoding=beam"))
    assert "--decoding" in err


def test_vllm_backend_without_vllm_is_a_clear_error(tiny_model_dir, small_test_file, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    err = one_line_error(capsys, args_for(tiny_model_dir, small_test_file, tmp_path / "o", "--backend=vllm"))
    assert "vllm is not installed" in err


@pytest.mark.slow
def test_torchrun_shards_are_gathered_exactly_once(tiny_model_dir, small_test_file, tmp_path):
    data = tmp_path / "many.json"
    data.write_text(json.dumps(RECORDS * 3))
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert I.main(args_for(tiny_model_dir, data, single, "--decoding=paper")) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "glpft.infer", *args_for(tiny_model_dir, data, sharded, "--decoding=paper")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((single / "predictions.json").read_text())
    two = json.loads((sharded / "predictions.json").read_text())
    assert len(two) == 9 and two == one  # seeded per sample: sharding does not change sampled outputs


def test_lora_adapter_folder_is_merged_at_load(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from glpft.modeling import load_model_and_tokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir)
    model, tok = load_model_and_tokenizer(adapter)  # recognised as an adapter without --*_use_lora
    ids = torch.tensor([tok.encode("user: hi</s>assistant: ")])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
    assert not hasattr(model, "peft_config")


def test_save_prompts_writes_every_model_input_with_its_token_count(
    tiny_model_dir, small_test_file, tmp_path
):
    from glpft.modeling import load_tokenizer

    out = tmp_path / "out"
    assert (
        I.main(args_for(tiny_model_dir, small_test_file, out, "--save_prompts", "--max_input_length=64")) == 0
    )
    rows = json.loads((out / "predictions.json").read_text())
    logged = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    planner = [r for r in logged if r["role"] == "planner"]
    steps = S.build_steps(RECORDS)
    assert [r["sample"] for r in planner] == [s.index for s in steps]
    assert [r["text"] for r in planner] == [s.prompt.text for s in steps]
    expected = {r["model_input_for_caller"] for r in rows if "model_input_for_caller" in r}
    expected |= {r["model_input_for_summarizer"] for r in rows if "model_input_for_summarizer" in r}
    assert {r["text"] for r in logged if r["role"] != "planner"} == expected
    tok = load_tokenizer(tiny_model_dir)
    assert all(r["tokens"] == min(64, len(tok.encode(r["text"]))) for r in logged)
    assert not (tmp_path / "plain" / "prompts.jsonl").exists()
    assert I.main(args_for(tiny_model_dir, small_test_file, tmp_path / "plain")) == 0
    assert not (tmp_path / "plain" / "prompts.jsonl").exists()


@pytest.mark.parametrize("content", [{"a": 1}, "text", 3, None])
def test_a_test_file_that_is_not_a_list_is_a_one_line_error_fixes_zero_rows(
    tiny_model_dir, tmp_path, capsys, content
):
    data = tmp_path / "test.json"
    data.write_text(json.dumps(content))
    err = one_line_error(capsys, args_for(tiny_model_dir, data, tmp_path / "o"))
    assert str(data) in err and "expected a JSON list" in err
    # a folder in which one file is not a list of records
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(RECORDS))
    (folder / "b.json").write_text(json.dumps({"a": 1}))
    err = one_line_error(capsys, args_for(tiny_model_dir, folder, tmp_path / "o"))
    assert "b.json" in err


def test_an_unknown_flag_is_a_one_line_error_naming_it(tiny_model_dir, small_test_file, tmp_path, capsys):
    err = one_line_error(capsys, args_for(tiny_model_dir, small_test_file, tmp_path / "o", "--bogus"))
    assert "unknown arguments: --bogus" in err and not (tmp_path / "o").exists()

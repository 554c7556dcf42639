"""Answer files → ToolEval's converted format (DESIGN §4.4), checked against the shared reference files."""

from __future__ import annotations

import copy
import json
import re

import pytest
from test_tooleval import answer_file

from glpft.formats import FormatError
from toolbench_multillm.convert import (
    MAX_DETAIL_NODES,
    answer_chain,
    convert_answer,
    convert_answer_dir,
    convert_answers,
    final_answer_text,
    has_finish,
    read_converted,
    tool_call,
)
from toolbench_multillm.tooleval import main

EXAMPLE = "stabletoolbench/data_example"


@pytest.mark.parametrize(
    "system, method", [("virtual_chatgpt_cot", "CoT@1"), ("virtual_chatgpt_dfs", "DFS_woFilter_w2")]
)
def test_conversion_equals_reference_converted_files(reference_dir, system, method):
    got = convert_answer_dir(reference_dir / EXAMPLE / "answer" / system / "G1_instruction", method)
    with open(reference_dir / EXAMPLE / "model_predictions_converted" / system / "G1_instruction.json") as f:
        expected = json.load(f)
    assert list(got) == ["588", "608", "1073"]
    assert got == expected


def test_cot_answer_without_valid_data_is_converted_from_its_try(reference_dir):
    path = reference_dir / EXAMPLE / "answer/virtual_chatgpt_cot/G1_instruction/588_CoT@1.json"
    data = json.loads(path.read_text())
    assert data["answer_generation"]["valid_data"] is False
    answer = convert_answer(data, "CoT@1")["answer"]
    names = [tool_call(n)["name"] for n in answer_chain(answer)[2:]]
    assert names == [n["description"] for n in data["trys"][-1]["chain"] if n["node_type"] == "Action"]
    assert not has_finish(answer) and final_answer_text(answer) == ""


def test_dfs_answer_without_valid_data_is_converted_from_the_whole_tree(reference_dir):
    path = reference_dir / EXAMPLE / "answer/virtual_chatgpt_dfs/G1_instruction/588_DFS_woFilter_w2.json"
    data = json.loads(path.read_text())
    data["answer_generation"]["valid_data"] = False
    answer = convert_answer(copy.deepcopy(data), "DFS_woFilter_w2")["answer"]
    nodes = answer_chain(answer)
    assert answer["total_steps"] == len(nodes)

    def count(node, kind):
        return (node["node_type"] == kind) + sum(count(c, kind) for c in node["children"])

    tree = data["tree"]["tree"]
    tools = [n for n in nodes if n["role"] == "tool"]
    assert len(tools) == count(tree, "Action")
    assert sum(n["role"] == "assistant" for n in nodes) == count(tree, "Thought")
    first = tree["children"][0]
    assert tool_call(tools[0]) == {
        "name": first["description"],
        "arguments": first["children"][0]["description"],
        "response": first["children"][0]["observation"],
    }
    # depth-first: the last branch tried is the one that ended with the final answer
    assert has_finish(answer) and tool_call(tools[-1])["response"] == ""


def test_assistant_messages_become_nodes_and_dict_arguments_are_serialised():
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "thinking"},
        {"role": "assistant", "content": None, "function_call": {"name": "f_for_t", "arguments": {"x": 1}}},
        {"role": "function", "name": "f_for_t", "content": '{"error": "", "response": "1"}'},
        {"role": "user", "content": "a DFS diversity prompt"},
        {
            "role": "assistant",
            "function_call": {"name": "Finish", "arguments": '{"return_type": "give_answer"}'},
        },
    ]
    data = {
        "answer_generation": {
            "valid_data": True,
            "query": "q",
            "function": [{"name": "f_for_t"}],
            "final_answer": "",
            "train_messages": [messages[:2], messages],
        }
    }
    c = convert_answer(data, "CoT@1")
    nodes = answer_chain(c["answer"])
    assert [n["role"] for n in nodes] == ["system", "user", "assistant", "tool", "tool"]
    assert nodes[3]["message"] == {
        "name": "f_for_t",
        "arguments": '{"x": 1}',
        "response": '{"error": "", "response": "1"}',
    }
    assert c["answer"]["total_steps"] == 5 and has_finish(c["answer"])


def test_reference_chatgpt_cot_repr_messages_are_read(reference_dir):
    answers = read_converted(reference_dir / "tooleval_reference/chatgpt_cot/G1_tool.json")
    assert len(answers) == 100
    finished = [q for q, a in answers.items() if has_finish(a["answer"])]
    assert 0 < len(finished) < 100
    for qid in finished:
        assert tool_call(answer_chain(answers[qid]["answer"])[-1])["name"] == "Finish"
    first = answer_chain(answers["1103"]["answer"])[2]
    assert tool_call(first)["name"] == "quizzes_for_moodring"  # a truncated repr string, read best-effort


def test_read_converted_names_file_and_field(tmp_path):
    bad = tmp_path / "G1_instruction.json"
    bad.write_text(json.dumps({"7": {"query": "q", "answer": {"method": "m"}}}))
    with pytest.raises(
        ValueError, match=r"G1_instruction\.json: query 7: missing field 'answer.answer_details'"
    ):
        read_converted(bad)


def test_convert_cli_refuses_to_overwrite_without_flag(reference_dir, tmp_path, capsys):
    answer_dir = reference_dir / EXAMPLE / "answer/virtual_chatgpt_dfs/G1_instruction"
    out = tmp_path / "conv" / "G1_instruction.json"
    argv = ["convert", "--answer_dir", str(answer_dir), "--method", "DFS_woFilter_w2", "--output", str(out)]
    assert main(argv) == 0
    assert set(read_converted(out)) == {"588", "608", "1073"}
    assert main(argv) == 1 and "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0


# ----------------------------------------------------------------------------- bad input, failed backends


def write_answers(folder, answers: dict[str, dict], method: str = "CoT@1"):
    folder.mkdir(parents=True, exist_ok=True)
    for qid, data in answers.items():
        (folder / f"{qid}_{method}.json").write_text(json.dumps(data))
    return folder


def convert_argv(answer_dir, out, method="CoT@1"):
    return ["convert", "--answer_dir", str(answer_dir), "--method", method, "--output", str(out)]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("alpha-umi tooleval convert:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", ["empty_folder", "no_file_for_the_method", "missing_folder", "a_file"])
def test_convert_with_nothing_to_convert_is_an_error(tmp_path, capsys, case):
    answer_dir = tmp_path / "answers"
    if case != "missing_folder":
        answer_dir.mkdir()
    if case == "no_file_for_the_method":
        write_answers(answer_dir, {"1": answer_file("right", "q")}, method="DFS_woFilter_w2")
    if case == "a_file":
        answer_dir = answer_dir / "1_CoT@1.json"
        answer_dir.write_text(json.dumps(answer_file("right", "q")))
    out = tmp_path / "conv.json"
    assert main(convert_argv(answer_dir, out)) == 2
    line = error_line(capsys)
    assert str(answer_dir) in line
    expected = {
        "empty_folder": "converted 0 answers",
        "no_file_for_the_method": "no *.json answer file has 'CoT@1' in its name (found e.g. 1_DFS_woFilter_w2.json)",
        "missing_folder": "no such answer folder",
        "a_file": "expected a folder",
    }[case]
    assert expected in line and not out.exists()


def _good() -> dict:
    return answer_file("right", "q")


def _with(path: str, value) -> dict:
    """A good answer file with one field (dotted path; ``[-1]`` is the last chain) replaced."""
    data = _good()
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node[-1] if k == "[-1]" else node[k]
    node[keys[-1]] = value
    return data


BAD_ANSWER_FILES = {
    "truncated": ('{"answer_generation": {"query": "q", "func', None),
    "empty": ("", None),
    "binary": (bytes(range(256)) * 4, None),
    "deep": ("[" * 5000 + "]" * 5000, "nested too deeply"),
    "a_list": ("[1, 2]", "expected a JSON object, got a JSON list"),
    "generation_a_string": ({"answer_generation": "done"}, "answer_generation"),
    "no_generation": ({"tree": {}}, "missing field 'answer_generation'"),
    "no_query": (dict(_good(), answer_generation={"function": []}), "answer_generation.query"),
    "function_a_string": (_with("answer_generation.function", "f"), "answer_generation.function"),
    "messages_a_dict": (
        _with("answer_generation.train_messages", {"a": 1}),
        "answer_generation.train_messages",
    ),
    "message_a_string": (
        dict(
            _good(), answer_generation={**_good()["answer_generation"], "train_messages": [["s", "u", "a"]]}
        ),
        "answer_generation.train_messages[-1][0]",
    ),
    "call_a_string": (
        dict(
            _good(),
            answer_generation={
                **_good()["answer_generation"],
                "train_messages": [[{}, {}, {"role": "assistant", "function_call": "Finish"}]],
            },
        ),
        "answer_generation.train_messages[-1][2].function_call",
    ),
    "tree_node_a_list": (
        {"answer_generation": {"query": "q", "function": []}, "tree": {"tree": {"children": [[1]]}}},
        "tree.tree.children[0]",
    ),
    "try_chain_a_string": (
        {"answer_generation": {"query": "q", "function": []}, "trys": [{"chain": "oops"}]},
        "trys[-1].chain",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ANSWER_FILES))
def test_a_bad_answer_file_is_a_one_line_error_naming_file_and_field(tmp_path, capsys, case):
    content, field = BAD_ANSWER_FILES[case]
    answer_dir = write_answers(tmp_path / "answers", {"1": _good(), "3": _good()})
    bad = answer_dir / "2_CoT@1.json"
    if isinstance(content, dict):
        content = json.dumps(content)
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "conv.json"
    assert main(convert_argv(answer_dir, out)) == 2
    line = error_line(capsys)
    assert str(bad) in line and (field is None or field in line), line
    assert not out.exists()


def test_answers_of_a_failed_backend_are_skipped_and_counted(tmp_path, capsys):
    answers = {"1": _good(), "2": answer_file("x", "q2", infrastructure_error="tool backend: HTTP 502")}
    answer_dir = write_answers(tmp_path / "answers", answers)
    conversion = convert_answers(answer_dir, "CoT@1")
    assert list(conversion.answers) == ["1"] and conversion.infrastructure_errors == {
        "2": "tool backend: HTTP 502"
    }
    assert main(convert_argv(answer_dir, tmp_path / "conv.json")) == 0
    assert "skipped 1 answers made against a failed tool backend" in capsys.readouterr().out
    assert list(read_converted(tmp_path / "conv.json")) == ["1"]
    (answer_dir / "1_CoT@1.json").unlink()  # only the failed one left: nothing to convert
    assert main(convert_argv(answer_dir, tmp_path / "conv2.json")) == 2
    assert "were made against a failed tool backend; converted 0 answers" in error_line(capsys)
    assert not (tmp_path / "conv2.json").exists()


def test_a_chain_too_long_to_nest_keeps_its_last_steps_and_stays_readable(tmp_path, capsys):
    data = _good()
    chain = data["answer_generation"]["train_messages"][-1]
    calls = chain[2:4] * 600  # 600 calls and their results, then Finish
    data["answer_generation"]["train_messages"] = [chain[:2] + calls + chain[-1:]]
    answer_dir = write_answers(tmp_path / "answers", {"1": data})
    out = tmp_path / "conv.json"
    assert main(convert_argv(answer_dir, out)) == 0
    assert "1 answers had more steps than a converted chain holds" in capsys.readouterr().out
    answer = read_converted(out)["1"]["answer"]
    nodes = answer_chain(answer)
    assert len(nodes) == MAX_DETAIL_NODES == answer["total_steps"]
    assert "earlier steps left out" in nodes[2]["message"] and has_finish(answer)
    assert final_answer_text(answer) == "right"


def test_a_lone_surrogate_in_an_answer_is_converted_and_kept(tmp_path):
    data = _good()
    data["answer_generation"]["train_messages"][-1][3]["content"] = "cut emoji \ud83d"
    answer_dir = write_answers(tmp_path / "answers", {"1": data})  # json.dumps writes it as \ud83d
    out = tmp_path / "conv.json"
    assert main(convert_argv(answer_dir, out)) == 0
    assert tool_call(answer_chain(read_converted(out)["1"]["answer"])[2])["response"] == "cut emoji \ud83d"


@pytest.mark.parametrize(
    "content, named",
    [
        ("[1]", "expected a JSON object"),
        (
            json.dumps(
                {"7": {"query": "q", "answer": {"answer_details": [{"role": "system", "next": "x"}]}}}
            ),
            "node 0",
        ),
        (json.dumps({"7": {"query": "q", "answer": {"answer_details": ["x"]}}}), "query 7"),
        ('{"7": ', "not valid JSON"),
    ],
)
def test_read_converted_errors_are_format_errors(tmp_path, content, named):
    path = tmp_path / "G1_tool.json"
    path.write_text(content)
    with pytest.raises(FormatError, match=re.escape(named)) as err:
        read_converted(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)

"""Answer files → ToolEval's converted format (DESIGN §4.4), checked against the shared reference files."""

from __future__ import annotations

import copy
import json

import pytest

from toolbench_multillm.convert import (
    answer_chain,
    convert_answer,
    convert_answer_dir,
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

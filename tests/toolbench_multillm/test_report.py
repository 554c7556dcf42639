"""The paper's Table 2 from ToolEval summaries: markdown and PNG."""

from __future__ import annotations

import json

import pytest

from toolbench_multillm.report import format_cell, load_summaries, render_table
from toolbench_multillm.tooleval import main


def test_report_renders_table2_markdown_and_png(tmp_path):
    def summary(metric, model, vals):
        groups = {
            g: {"mean": v, "std": 1.0, "n_queries": 3, "complete": True, "per_repeat": [v]}
            for g, v in vals.items()
        }
        avg = sum(vals.values()) / len(vals)
        return {"metric": metric, "model": model, "groups": groups, "average": {"mean": avg, "std": 0.0}}

    res = tmp_path / "res"
    res.mkdir()
    vals = {"G1_instruction": 50.0, "G1_tool": 40.0, "G3_instruction": 30.0}
    (res / "alpha-umi_pass_rate_summary.json").write_text(json.dumps(summary("pass_rate", "alpha-umi", vals)))
    (res / "alpha-umi_vs_chatgpt_cot_win_rate_summary.json").write_text(
        json.dumps(summary("win_rate", "alpha-umi", {"G1_instruction": 60.0}))
    )
    assert main(["report", "--results", str(res), "--output", str(tmp_path / "out" / "table2")]) == 0
    md = (tmp_path / "out" / "table2.md").read_text()
    header = md.splitlines()[0]
    assert (
        header.startswith("| Model | I1-Inst. Pass | I1-Inst. Win | I1-Tool Pass |")
        and "Average Win" in header
    )
    row = md.splitlines()[2]
    assert row.startswith("| alpha-umi | 50.0 ± 1.0 | 60.0 ± 1.0 | 40.0 ± 1.0 | – |")
    assert (tmp_path / "out" / "table2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert render_table(load_summaries([str(res)])) == md


def test_average_cell_says_how_many_groups_it_covers():
    summary = {"groups": {}, "average": {"mean": 42.0, "std": 2.0, "groups": 2}}
    assert format_cell(summary, None) == "42.0 ± 2.0 (2/6 groups)"
    assert format_cell(summary, "G1_tool") == "–" and format_cell(None, None) == "–"


def good_summary() -> dict:
    return {"metric": "pass_rate", "model": "m", "groups": {}, "average": {"mean": None, "std": None}}


@pytest.mark.parametrize(
    "content, named",
    [
        ('{"metric": "pass_rate", "mod', "not valid JSON"),
        ("", "not valid JSON"),
        (bytes(range(256)) * 4, None),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"metric": "loss", "model": "m"}', "not a ToolEval summary"),
        (json.dumps({**good_summary(), "groups": {"G1_tool": {"mean": "high"}}}), "groups.G1_tool.mean"),
        (json.dumps({**good_summary(), "average": 3}), "field 'average'"),
    ],
)
def test_report_on_a_corrupt_summary_is_a_one_line_error_naming_it(tmp_path, capsys, content, named):
    path = tmp_path / "m_pass_rate_summary.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["report", "--results", str(tmp_path), "--output", str(tmp_path / "out" / "t")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("alpha-umi tooleval report:")]
    assert len(lines) == 1 and "Traceback" not in err and path.name in lines[0]
    assert named is None or named in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["missing", "empty_folder"])
def test_report_without_summaries_is_an_error(tmp_path, capsys, where):
    results = tmp_path / "missing" if where == "missing" else tmp_path
    assert main(["report", "--results", str(results), "--output", str(tmp_path / "t")]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("alpha-umi tooleval report:") and str(results) in line and "\n" not in line

"""The paper's Table 2 from ToolEval summaries: markdown and PNG."""

from __future__ import annotations

import json

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

"""The paper's Table 2 (pass and win rate per test group, mean ± std over repeats) from ToolEval
summaries, as markdown and as a bar chart (PNG).

    alpha-umi tooleval report --results pass_rate_results win_rate_results --output results/table2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glpft.formats import FormatError, read_json

#: paper Table 2 column order and headers
TABLE_GROUPS = [
    ("G1_instruction", "I1-Inst."),
    ("G1_tool", "I1-Tool"),
    ("G1_category", "I1-Cat."),
    ("G2_instruction", "I2-Inst."),
    ("G2_category", "I2-Cat."),
    ("G3_instruction", "I3-Inst."),
]


def _check_stat(path: Path, where_: str, stat: Any) -> None:
    if not isinstance(stat, dict):
        raise FormatError(f"{path}: field '{where_}' should be an object", f"bad '{where_}'")
    for name in ("mean", "std"):
        value = stat.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise FormatError(f"{path}: field '{where_}.{name}' should be a number or null", f"bad '{name}'")


def read_summary(path: Path) -> dict:
    """One ``*_summary.json`` written by pass-rate or win-rate, checked (one-line FormatError naming it)."""
    s = read_json(path, expect=dict)
    if s.get("metric") not in ("pass_rate", "win_rate") or not isinstance(s.get("model"), str):
        raise FormatError(
            f"{path}: missing field 'metric' or 'model' (not a ToolEval summary)", "not a summary"
        )
    groups = s.get("groups")
    if not isinstance(groups, dict):
        raise FormatError(f"{path}: missing field 'groups'", "missing 'groups'")
    for group, g in groups.items():
        _check_stat(path, f"groups.{group}", g)
    _check_stat(path, "average", s.get("average"))
    n = s["average"].get("groups")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool)):
        raise FormatError(f"{path}: field 'average.groups' should be a number", "bad 'groups'")
    return s


def load_summaries(paths: list[str]) -> dict[str, dict[str, dict]]:
    """``{model: {"pass_rate": summary, "win_rate": summary}}`` from summary files or folders of them.

    A missing path, a corrupt summary or no summary at all is a one-line FormatError.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FormatError(f"{p}: no such summary file or folder", "missing file")
        files += sorted(p.glob("*_summary.json")) if p.is_dir() else [p]
    if not files:
        raise FormatError(f"no *_summary.json found in {', '.join(paths)}", "no summaries")
    table: dict[str, dict[str, dict]] = {}
    for f in files:
        s = read_summary(f)
        table.setdefault(s["model"], {})[s["metric"]] = s
    return table


def format_cell(summary: dict | None, group: str | None) -> str:
    """``"mean ± std"`` of one group of a summary (``group=None``: the average), ``–`` when absent."""
    if not summary:
        return "–"
    g = summary["average"] if group is None else summary["groups"].get(group)
    if not g or g.get("mean") is None:
        return "–"
    text = f"{g['mean']:.1f}" + (f" ± {g['std']:.1f}" if g.get("std") is not None else "")
    if group is None and g.get("groups", len(TABLE_GROUPS)) < len(TABLE_GROUPS):
        text += f" ({g['groups']}/{len(TABLE_GROUPS)} groups)"
    return text


def render_table(table: dict[str, dict[str, dict]]) -> str:
    """Paper Table 2 as markdown: one row per model; Pass and Win per group, then the average."""
    cols = TABLE_GROUPS + [(None, "Average")]
    header = ["Model"] + [f"{name} {m}" for _, name in cols for m in ("Pass", "Win")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, metrics in table.items():
        cells = [model]
        for group, _ in cols:
            cells += [
                format_cell(metrics.get("pass_rate"), group),
                format_cell(metrics.get("win_rate"), group),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_chart(table: dict[str, dict[str, dict]], path: Path) -> None:
    """Grouped bars (one per model) for pass rate and win rate per group, with std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = TABLE_GROUPS + [(None, "Average")]
    models = list(table)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(cols)), 7), sharex=True)
    width = 0.8 / max(1, len(models))
    for ax, metric in zip(axes, ("pass_rate", "win_rate")):
        for i, model in enumerate(models):
            s = table[model].get(metric)
            vals, errs = [], []
            for group, _ in cols:
                g = (s["average"] if group is None else s["groups"].get(group)) if s else None
                vals.append(g["mean"] if g and g.get("mean") is not None else 0.0)
                errs.append(g.get("std") or 0.0 if g else 0.0)
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(cols))]
            ax.bar(xs, vals, width, yerr=errs, capsize=2, label=model)
        ax.set_ylabel(("Pass" if metric == "pass_rate" else "Win") + " rate (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=min(4, max(1, len(models))))
    axes[-1].set_xticks(range(len(cols)), [name for _, name in cols])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""The demo's report: the paper's Table 1 / Table 2 layout, per-query outcomes, plots with value labels.

``write_report(out, run)`` writes ``<out>/report.md`` and its PNGs from the numbers :mod:`demo` collected
(``run``: configuration, machine, stage times, training, static and real-time results, memory).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: how a real-time query ended, in report order
OUTCOMES = ("solved", "wrong answer", "gave up", "step limit", "tool error")
#: static metric keys → the paper's Table 1 column names (higher is better except Hallu.)
STATIC_COLUMNS = {
    "plan_em": "Plan ACC",
    "action_em": "Act. EM",
    "hallu_rate": "Hallu. ↓",
    "f1": "Arg. F1",
    "rouge": "R-L",
}
LOWER_IS_BETTER = ("hallu_rate",)
#: real-time methods → the paper's Table 2 names
METHOD_NAMES = {"CoT@1": "ReACT (CoT@1)", "DFS_woFilter_w2": "DFSDT (DFS_woFilter_w2)"}
SMOKE = "SMOKE RUN (--quick): tiny world, model and training; these numbers mean nothing."


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a pass rate of ``k`` out of ``n`` (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def outcome(
    answer: dict[str, Any] | None, query: dict[str, Any], check: Callable[[dict, str | None], bool]
) -> str:
    """One of :data:`OUTCOMES` for a query's answer file (``None``: no file was written)."""
    gen = (answer or {}).get("answer_generation")
    if not isinstance(gen, dict) or gen.get("infrastructure_error"):
        return "tool error"
    if not gen.get("valid_data"):
        return "step limit"
    if gen.get("finish_type") == "give_up":
        return "gave up"
    try:
        final = json.loads(gen.get("final_answer") or "{}").get("final_answer")
    except (ValueError, AttributeError):
        final = gen.get("final_answer")
    return "solved" if check(query, final) else "wrong answer"


def pass_rate(queries: Path, answers: Path, method: str, check: Callable[[dict, str | None], bool]) -> dict:
    """Exact answer check of each query's final answer, with the outcome of every query."""
    rows = json.loads(queries.read_text())
    counts = dict.fromkeys(OUTCOMES, 0)
    for q in rows:
        path = answers / f"{q['query_id']}_{method}.json"
        counts[outcome(json.loads(path.read_text()) if path.exists() else None, q, check)] += 1
    n, solved = len(rows), counts["solved"]
    low, high = wilson(solved, n)
    return {"queries": n, "solved": solved, "pass_rate": solved / n if n else 0.0, "ci95": [low, high],
            "outcomes": counts}  # fmt: skip


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    return f"{float(v):.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _bar_labels(ax, bars, values, digits: int = 2) -> None:
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.{digits}f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")  # fmt: skip


def plots(out: Path, run: dict[str, Any]) -> list[str]:
    """training_curves.png, static_metrics.png (Hallu. on its own axis), pass_rate.png, outcomes.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for job, r in run["training"].items():
        pts = r.get("curve") or []
        if pts:
            offset = r.get("step_offset", 0)
            ax.plot([s + offset for s, _ in pts], [loss for _, loss in pts], label=job, linewidth=1.2)
    ax.set(xlabel="optimizer step (pretraining → stage 1 → stage 2 or the single LLM)", ylabel="training loss",
           title="GLPFT training curves")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=110)
    plt.close(fig)
    names.append("training_curves.png")

    static = run["static"]
    higher = [k for k in STATIC_COLUMNS if k not in LOWER_IS_BETTER]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [4, 1.3]})
    width = 0.8 / max(1, len(static))
    for i, (label, m) in enumerate(static.items()):
        xs = [k + i * width for k in range(len(higher))]
        values = [m.get(k) or 0.0 for k in higher]
        _bar_labels(ax, ax.bar(xs, values, width, label=label), values)
        hv = [m.get("hallu_rate") or 0.0]
        _bar_labels(ax2, ax2.bar([i * width], hv, width), hv)
    ax.set_xticks([k + width * (len(static) - 1) / 2 for k in range(len(higher))],
                  [STATIC_COLUMNS[k] for k in higher])  # fmt: skip
    ax.set(ylim=(0, 1.1), title="static evaluation, higher is better")
    ax.legend(fontsize=7, loc="upper right")
    ax2.set_xticks([width * (len(static) - 1) / 2], ["Hallu."])
    ax2.set(ylim=(0, 1.1), title="lower is better")
    fig.tight_layout()
    fig.savefig(out / "static_metrics.png", dpi=110)
    plt.close(fig)
    names.append("static_metrics.png")

    realtime = run["realtime"]
    methods = list(METHOD_NAMES)
    fig, ax = plt.subplots(figsize=(8, 4))
    # each method's group holds only the rows run with it, side by side; a row keeps its colour
    groups = [[label for label, pm in realtime.items() if m in pm] for m in methods]
    width = 0.8 / max(1, max(len(g) for g in groups))
    colour = {label: f"C{i}" for i, label in enumerate(realtime)}
    for k, (m, group) in enumerate(zip(methods, groups)):
        for i, label in enumerate(group):
            r = realtime[label][m]
            v, (lo, hi) = r["pass_rate"], r["ci95"]
            x = k + (i - (len(group) - 1) / 2) * width
            ax.bar(x, v, width, color=colour[label], yerr=[[v - lo], [hi - v]], capsize=3, ecolor="gray",
                   label=label if label not in ax.get_legend_handles_labels()[1] else None)  # fmt: skip
            ax.annotate(f"{v:.2f}\n({r['solved']}/{r['queries']})", (x, v), ha="center", va="bottom",
                        fontsize=6, xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_xticks(range(len(methods)), [METHOD_NAMES[m] for m in methods])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(
        ylim=(-0.02, 1.15),
        ylabel="pass rate (95% Wilson interval)",
        title="real-time pass rate, held-out queries",
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "pass_rate.png", dpi=110)
    plt.close(fig)
    names.append("pass_rate.png")

    rows = [
        (f"{label}\n{m.split('@')[0].split('_')[0]}", r)
        for label, pm in realtime.items()
        for m, r in pm.items()
    ]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    left = [0.0] * len(rows)
    colors = {"solved": "tab:green", "wrong answer": "tab:red", "gave up": "tab:gray",
              "step limit": "tab:orange", "tool error": "tab:purple"}  # fmt: skip
    for kind in OUTCOMES:
        vals = [r["outcomes"][kind] for _, r in rows]
        ax.barh(range(len(rows)), vals, left=left, label=kind, color=colors[kind])
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="queries", title="how each real-time query ended")
    ax.legend(fontsize=7, ncol=len(OUTCOMES), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    fig.savefig(out / "outcomes.png", dpi=110)
    plt.close(fig)
    names.append("outcomes.png")
    return names


def write_report(out: Path, run: dict[str, Any]) -> Path:
    """``<out>/report.md`` (and its plots) from the demo's collected numbers; returns its path."""
    cfg, machine = run["config"], run["machine"]
    lines = ["# α-UMi demo report", ""]
    if cfg.get("quick"):
        lines += [f"> **{SMOKE}**", ""]
    lines += [
        f"Seed {cfg['seed']}; {machine['threads']} torch threads (fixed by the demo; the same seed and thread "
        f"count give the same numbers) on a machine with {machine['cpus']} CPUs; torch {machine['torch']}, "
        f"transformers {machine['transformers']}; wall time {sum(run['times'].values()):.0f}s over all stages"
        + (
            f" (this invocation: {run['wall_seconds']:.0f}s; {len(run['reused'])} finished stages reused)."
            if run.get("reused")
            else "."
        ),
        "",
        "Configuration: "
        + ", ".join(f"`{k}={v}`" for k, v in cfg.items() if k not in ("seed", "quick"))
        + ".",
        "",
        f"Models: a Llama of {run['parameters'] / 1e6:.2f}M parameters (hidden {cfg['hidden_size']}, "
        f"{cfg['layers']} layers, {run['vocab']}-token {cfg['tokenizer']} BPE) trained on {cfg['n_train']} expert "
        f"trajectories of the demo tool world. Static: every step of {cfg['n_test']} held-out trajectories "
        f"with the gold history. Real time: held-out queries against the tool server, answers checked exactly.",
        "",
        f"Base model: the random model pretrained as a causal LM (every token) on the dialogues (query, "
        f"thoughts, calls, observations, answer; no system prompt, tool documents or α-UMi role markers) of "
        f"{cfg.get('n_pretrain', 0)} other scenarios of the world (none of the held-out or GLPFT queries); it "
        "stands in for the pretrained LLaMA the paper starts from.",
        "",
        run["budget_note"],
        "",
    ]
    summary = []
    for name, per_method in run["realtime"].items():
        for method, r in per_method.items():
            if name in run.get("headline", ()):
                low, high = r["ci95"]
                summary.append(f"{name} {METHOD_NAMES.get(method, method).split(' ')[0]} "
                               f"{r['solved']}/{r['queries']} = {r['pass_rate']:.3f} [{low:.2f}, {high:.2f}]")  # fmt: skip
    if summary:
        lines += ["**Real-time pass rate (95% interval):** " + "; ".join(summary) + ".", ""]
    lines += ["## Static evaluation (paper Table 1 layout)", "",
              "| Model | " + " | ".join(STATIC_COLUMNS.values()) + " |",
              "| --- |" + " --- |" * len(STATIC_COLUMNS)]  # fmt: skip
    for name, m in run["static"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in STATIC_COLUMNS) + " |")
    lines += ["", "Hallu. (hallucinated API names) is lower-is-better; the others higher-is-better.", ""]
    lines += ["## Real-time evaluation (paper Table 2 layout)", "",
              "| Model | Method | Pass | 95% interval | solved / queries |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, per_method in run["realtime"].items():
        for method, r in per_method.items():
            low, high = r["ci95"]
            lines.append(f"| {name} | {METHOD_NAMES.get(method, method)} | {r['pass_rate']:.3f} | "
                         f"{low:.2f}–{high:.2f} | {r['solved']} / {r['queries']} |")  # fmt: skip
    lines += ["", "### Outcome per query", "", "| Model | Method | " + " | ".join(OUTCOMES) + " |",
              "| --- | --- |" + " --- |" * len(OUTCOMES)]  # fmt: skip
    for name, per_method in run["realtime"].items():
        for method, r in per_method.items():
            lines.append(f"| {name} | {METHOD_NAMES.get(method, method).split(' ')[0]} | "
                         + " | ".join(str(r["outcomes"][k]) for k in OUTCOMES) + " |")  # fmt: skip
    lines += ["", "*solved*: every ground-truth value in the final answer; *wrong answer*: an answer without "
              "them; *gave up*: Finish(give_up_and_restart) on every branch; *step limit*: no answer within the "
              "search limits; *tool error*: the tool backend failed (never counted as an answer).", ""]  # fmt: skip
    mem = run.get("memory")
    if mem:
        lines += ["## Stage 2 as LoRA adapters on one backbone (served together)", "",
                  "| stage 2 | resident weights (MB) | Plan ACC | Act. EM | DFSDT pass |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, row in mem.items():
            lines.append(f"| {name} | {row['megabytes']:.2f} | {_fmt(row.get('plan_em'))} | "
                         f"{_fmt(row.get('action_em'))} | {_fmt(row.get('dfsdt_pass'))} ({row.get('dfsdt_queries', '?')} queries) |")  # fmt: skip
        lines += ["", "Resident weights: the distinct parameter and buffer tensors held in memory by the "
                  "serving process (base + three unmerged adapters) or by the three full role models.", ""]  # fmt: skip
    lines += [
        "## Training",
        "",
        "| job | optimizer steps | first loss | last loss |",
        "| --- | --- | --- | --- |",
    ]
    for job, r in run["training"].items():
        lines.append(
            f"| {job} | {r.get('steps', '—')} | {_fmt(r.get('first_loss'))} | {_fmt(r.get('last_loss'))} |"
        )
    lines += ["", "## Stage times", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in run["times"].items()]
    lines += ["", *[f"![{p}]({p})" for p in plots(out, run)], ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

"""The whole α-UMi chain on a CPU in minutes, no downloads, through the project's real entry points.

    alpha-umi demo [--out runs/demo] [--quick] [--force] [--seed 0]

demo tool world → raw ToolBench answers → prepro → tiny model → GLPFT stage 1 (backbone) → stage 2
(planner, caller, summarizer) → static inference + metrics (trained vs untrained) → tool server on
127.0.0.1 → real-time CoT and DFSDT on held-out queries → pass rate by exact answer check →
``<out>/report.md`` with PNG plots. Finished stages are reused on a rerun unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from glpft.formats import write_json_atomic
from glpft.prompts import AGENT_ROLES, TRAIN_PREFIX


class DemoError(ValueError):
    """A demo run that cannot start (a bad --out, or a folder holding another configuration's run)."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and hyper-parameters of one demo run (tiny model, tiny world)."""

    n_train: int = 200
    n_test: int = 40
    n_realtime: int = 40
    hidden_size: int = 128
    layers: int = 3
    vocab_size: int = 4000
    model_max_length: int = 1280
    stage1_epochs: float = 6
    stage2_epochs: float = 4
    stage1_lr: float = 3e-3
    stage2_lr: float = 1e-3
    batch_size: int = 8
    max_new_tokens: int = 64


QUICK = DemoConfig(
    n_train=60, n_test=8, n_realtime=3, hidden_size=64, layers=2, vocab_size=800,
    stage1_epochs=1, stage2_epochs=1, max_new_tokens=32,
)  # fmt: skip


class Stages:
    """Runs named stages once: a stage's folder gets ``.done.json`` (wall time, result) when it ends."""

    def __init__(self, out: Path, force: bool):
        self.out, self.force, self.times = out, force, {}

    def run(self, name: str, fn: Callable[[Path], Any]) -> Any:
        folder = self.out / name
        marker = folder / ".done.json"
        if marker.exists() and not self.force:
            done = json.loads(marker.read_text())
            self.times[name] = done["seconds"]
            print(f"[demo] {name:<22} reused ({done['seconds']:.1f}s when it ran)", flush=True)
            return done["result"]
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        result = fn(folder)
        seconds = time.perf_counter() - t0
        marker.write_text(json.dumps({"seconds": seconds, "result": result}, indent=2))
        self.times[name] = seconds
        print(f"[demo] {name:<22} {seconds:6.1f}s", flush=True)
        return result


def _train(base: str, data: Path, out: Path, epochs: float, lr: float, cfg: DemoConfig, seed: int) -> dict:
    from glpft import train
    from glpft.lora import LoraArguments

    train_args = train.TrainingArguments(
        output_dir=str(out), num_train_epochs=epochs, learning_rate=lr, lr_scheduler_type="cosine",
        warmup_steps=0.1, weight_decay=0.0, per_device_train_batch_size=cfg.batch_size, logging_steps=5,
        save_strategy="no", report_to="none", seed=seed, use_cpu=True,
    )  # fmt: skip
    train.train(
        train.ModelArguments(model_name_or_path=base),
        train.DataArguments(data_path=str(data), model_max_length=cfg.model_max_length),
        LoraArguments(),
        train_args,
    )
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    return {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}


def _static(models: dict[str, str], test_file: Path, out: Path, cfg: DemoConfig) -> dict:
    from glpft import infer, metrics

    infer.infer(
        infer.ModelArguments(**{f"{r}_model_name_or_path": models[r] for r in AGENT_ROLES}),
        infer.DataArguments(data_path=str(test_file), max_input_length=cfg.model_max_length),
        infer.InferArguments(
            output_dir=str(out), decoding="greedy", per_device_eval_batch_size=16,
            max_new_tokens=cfg.max_new_tokens, prompt_prefix=True,
        ),
    )  # fmt: skip
    result = metrics.compute_metrics(metrics.read_predictions(out / "predictions.json"))
    scores = {k: result[k] for k in metrics.METRIC_KEYS}
    write_json_atomic(out / "metrics.json", scores, indent=2)
    return scores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ToolServerThread:
    """The project's tool server (FastAPI + uvicorn) on 127.0.0.1, serving the demo tools in-process."""

    def __init__(self, cache_path: Path):
        import uvicorn

        from toolbench_multillm import demo_apis
        from toolbench_multillm.cache import ResponseCache
        from toolbench_multillm.registry import ToolRegistry
        from toolbench_multillm.server import ServerConfig, create_app

        registry = ToolRegistry()
        demo_apis.register_demo_tools(registry)
        app = create_app(ServerConfig(cache=ResponseCache(str(cache_path)), registry=registry))
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ToolServerThread:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("tool server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/virtual"


def _realtime(
    models: dict[str, str], queries: Path, out: Path, method: str, url: str, cfg: DemoConfig, seed: int
) -> dict:
    from glpft.generation import DecodingConfig
    from toolbench_multillm import demo_scenarios
    from toolbench_multillm.agents import AlphaUmiAgent
    from toolbench_multillm.env import ToolEnv, make_client
    from toolbench_multillm.generators import load_generators
    from toolbench_multillm.run_queries import answer_queries
    from toolbench_multillm.search import Limits
    from toolbench_multillm.tools import build_toolset, load_queries

    # greedy for one chain; DFSDT's siblings need the paper's sampling (temperature 0.5)
    sample = not method.startswith("CoT")
    config = DecodingConfig(max_new_tokens=cfg.max_new_tokens, do_sample=sample, temperature=0.5, seed=seed)
    specs = {r: (models[r], False, "cpu") for r in AGENT_ROLES}
    gens = load_generators(specs, config, "fp32", context_length=cfg.model_max_length, seed=seed)
    # the demo's models were trained on the training-time prefix, tool entries and observation text
    agent = AlphaUmiAgent(gens["planner"], gens["caller"], gens["summarizer"], prefix=TRAIN_PREFIX)
    client = make_client("server", url)

    def make_env(query):
        return ToolEnv(build_toolset(query, docs="training"), client, observation_format="training")

    answers = out / "answers"
    answer_queries(
        load_queries(queries), make_env, agent, method, answers, limits=Limits(max_queries=40), progress=False
    )
    return pass_rate(queries, answers, method, demo_scenarios.check_answer)


def pass_rate(queries: Path, answers: Path, method: str, check: Callable[[dict, str | None], bool]) -> dict:
    """Exact answer check of each query's final answer (this world has verifiable answers)."""
    rows = json.loads(queries.read_text())
    solved = 0
    for q in rows:
        path = answers / f"{q['query_id']}_{method}.json"
        final = None
        if path.exists():
            final = json.loads(path.read_text())["answer_generation"].get("final_answer")
        solved += bool(check(q, final))
    return {"queries": len(rows), "solved": solved, "pass_rate": solved / len(rows) if rows else 0.0}


def _plots(
    out: Path, trained_dirs: dict[str, Path], static: dict[str, dict], realtime: dict[str, dict]
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for role, folder in trained_dirs.items():
        hist = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        pts = [(e["step"], e["loss"]) for e in hist if "loss" in e]
        if pts:
            ax.plot(*zip(*pts), label=role)
    ax.set(xlabel="step", ylabel="training loss", title="GLPFT loss curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=100)
    names.append("loss_curves.png")
    plt.close(fig)

    keys = ["plan_em", "action_em", "f1", "rouge", "hallu_rate"]
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(static))
    for i, (label, m) in enumerate(static.items()):
        ax.bar([k + i * width for k in range(len(keys))], [m.get(k) or 0 for k in keys], width, label=label)
    ax.set_xticks([k + width * (len(static) - 1) / 2 for k in range(len(keys))], keys)
    ax.set(ylim=(0, 1), title="static metrics (held-out steps)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "static_metrics.png", dpi=100)
    names.append("static_metrics.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(realtime), [r["pass_rate"] for r in realtime.values()])
    ax.set(ylim=(0, 1), ylabel="pass rate", title="real-time pass rate")
    fig.tight_layout()
    fig.savefig(out / "pass_rate.png", dpi=100)
    names.append("pass_rate.png")
    plt.close(fig)
    return names


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def write_report(
    out: Path, cfg: DemoConfig, times: dict, training: dict, static: dict, realtime: dict, plots: list[str]
) -> Path:
    trained, base = static["α-UMi (trained)"], static["untrained baseline"]
    lines = [
        "# α-UMi demo report",
        "",
        f"Tiny Llama (hidden {cfg.hidden_size}, {cfg.layers} layers) trained on {cfg.n_train} expert trajectories of the "
        f"demo tool world; static metrics on the steps of {cfg.n_test} held-out trajectories; real-time runs on "
        f"{cfg.n_realtime} held-out queries against the tool server.",
        "",
        f"**Result:** Plan ACC {trained['plan_em']:.3f} (untrained {base['plan_em']:.3f}), "
        f"Act. EM {trained['action_em']:.3f} (untrained {base['action_em']:.3f}).",
        "",
        "## Static evaluation (paper Table 1 metrics)",
        "",
        "| model | Plan ACC | Act. EM | Hallu. | Arg. F1 | R-L |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in static.items():
        lines.append(
            f"| {name} | {_fmt(m['plan_em'])} | {_fmt(m['action_em'])} | {_fmt(m['hallu_rate'])} | {_fmt(m['f1'])} | {_fmt(m['rouge'])} |"
        )
    lines += [
        "",
        "## Real-time evaluation (exact answer check)",
        "",
        "| method | queries | solved | pass rate |",
        "| --- | --- | --- | --- |",
    ]
    for method, r in realtime.items():
        lines.append(f"| {method} | {r['queries']} | {r['solved']} | {r['pass_rate']:.3f} |")
    lines += ["", "## Training", "", "| job | first loss | last loss |", "| --- | --- | --- |"]
    for job, r in training.items():
        lines.append(f"| {job} | {_fmt(r['first_loss'])} | {_fmt(r['last_loss'])} |")
    lines += ["", "## Stage times", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in times.items()]
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_demo(out: Path, cfg: DemoConfig, seed: int = 0, force: bool = False) -> dict:
    """Run every stage (reusing finished ones) and return the report's numbers."""
    from glpft import prepro
    from glpft.tiny_model import corpus_texts, make_tiny_model
    from toolbench_multillm import demo_data

    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out}: is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    # finished stages are reused only by a run of the same configuration (fixes: `demo` and
    # `demo --quick` sharing a folder wrote a report about models it had not measured)
    config = {**asdict(cfg), "seed": seed}
    config_file = out / "demo_config.json"
    if config_file.exists() and not force:
        try:
            previous = json.loads(config_file.read_text())
        except ValueError:
            previous = None
        if previous != config:
            changed = sorted(
                k for k in config if not isinstance(previous, dict) or previous.get(k) != config[k]
            )
            raise DemoError(
                f"{out} holds a demo run with another configuration ({', '.join(changed) or 'unreadable'}); "
                "pass --force to start over there, or choose another --out"
            )
    write_json_atomic(config_file, config, indent=2)
    st = Stages(out, force)
    world = out / "01_world"
    st.run(
        "01_world",
        lambda d: demo_data.generate_demo_data(d, seed=seed, n_train=cfg.n_train, n_test=cfg.n_test) and None,
    )

    def do_prepro(d: Path) -> dict:
        train = prepro.run(
            str(d / "train"), data_dir=str(world), test_ids_dir=str(world / "test_query_ids"), progress=False
        )
        test = prepro.run(
            str(d / "test"), data_dir=str(world / "test"), exclude_test_ids=False, progress=False
        )
        return {"train_samples": dict(train.samples), "test_trajectories": test.kept}

    st.run("02_prepro", do_prepro)
    data = out / "02_prepro" / "train"
    test_file = out / "02_prepro" / "test" / "raw_data" / "raw_data_stage_2.json"

    def do_model(d: Path) -> None:
        texts = corpus_texts([data / "train_backbone.json", data / "train_summarizer.json"])
        make_tiny_model(
            d, texts, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.layers, seed=seed
        )

    st.run("03_tiny_model", do_model)
    base = str(out / "03_tiny_model")
    training = {
        "stage 1: backbone": st.run(
            "04_stage1_backbone",
            lambda d: _train(
                base, data / "train_backbone.json", d, cfg.stage1_epochs, cfg.stage1_lr, cfg, seed
            ),
        )
    }
    backbone = str(out / "04_stage1_backbone")
    for role in AGENT_ROLES:
        training[f"stage 2: {role}"] = st.run(
            f"05_stage2_{role}",
            lambda d, role=role: _train(
                backbone, data / f"train_{role}.json", d, cfg.stage2_epochs, cfg.stage2_lr, cfg, seed
            ),
        )
    trained = {r: str(out / f"05_stage2_{r}") for r in AGENT_ROLES}
    untrained = dict.fromkeys(AGENT_ROLES, base)
    static = {
        "α-UMi (trained)": st.run("06_static_trained", lambda d: _static(trained, test_file, d, cfg)),
        "untrained baseline": st.run("06_static_untrained", lambda d: _static(untrained, test_file, d, cfg)),
    }

    def realtime_queries(d: Path) -> None:
        rows = json.loads((world / "queries" / "test.json").read_text())[: cfg.n_realtime]
        (d / "queries.json").write_text(json.dumps(rows, indent=2))

    st.run("07_realtime_queries", realtime_queries)
    queries = out / "07_realtime_queries" / "queries.json"
    realtime = {}
    for method, stage in (("CoT@1", "08_realtime_cot"), ("DFS_woFilter_w2", "09_realtime_dfsdt")):
        marker = out / stage / ".done.json"
        if marker.exists() and not force:
            realtime[method] = st.run(stage, lambda d: None)
            continue
        with ToolServerThread(out / "tool_cache.sqlite") as server:
            realtime[method] = st.run(
                stage, lambda d, m=method: _realtime(trained, queries, d, m, server.url, cfg, seed)
            )
    dirs = {
        "stage 1 backbone": out / "04_stage1_backbone",
        **{r: out / f"05_stage2_{r}" for r in AGENT_ROLES},
    }
    plots = _plots(out, dirs, static, realtime)
    report = write_report(out, cfg, st.times, training, static, realtime, plots)
    print(f"[demo] report: {report}")
    return {"static": static, "realtime": realtime, "training": training, "config": asdict(cfg)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="alpha-umi demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    ap.add_argument("--quick", action="store_true", help="smaller world and model: about 2 minutes")
    ap.add_argument("--force", action="store_true", help="rerun every stage instead of reusing finished ones")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    try:
        result = run_demo(
            Path(args.out), QUICK if args.quick else DemoConfig(), seed=args.seed, force=args.force
        )
    except DemoError as e:
        print(f"alpha-umi demo: error: {e}", file=sys.stderr)
        return 2
    m = result["static"]["α-UMi (trained)"]
    print(f"[demo] done in {time.perf_counter() - t0:.0f}s: Plan ACC {m['plan_em']:.3f}, Act. EM {m['action_em']:.3f}, "
          + ", ".join(f"{k} pass rate {v['pass_rate']:.2f}" for k, v in result["realtime"].items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The whole α-UMi chain on a CPU in minutes, no downloads, through the project's real entry points.

    alpha-umi demo [--out runs/demo] [--quick] [--force] [--seed 0] [--set KEY=VALUE ...]

demo tool world → raw ToolBench answers → prepro → tiny model → causal-LM pretraining on the dialogues
of other scenarios (the base model) → GLPFT stage 1 (backbone) → stage 2 (planner, caller, summarizer;
and again as three LoRA adapters) → the single-LLM baseline (the backbone trained on for as many steps
as stage 2 took) → static inference + metrics → tool server on 127.0.0.1 → real-time CoT and DFSDT on
held-out queries (α-UMi, α-UMi with a constrained caller, the adapters served by ``serve-models``, the
single LLM; the base model without GLPFT runs ReACT only) → pass rate by exact answer check →
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from glpft.formats import write_json_atomic
from glpft.prompts import AGENT_ROLES, TRAIN_PREFIX
from toolbench_multillm.demo_report import SMOKE


class DemoError(ValueError):
    """A demo run that cannot start (a bad --out, or a folder holding another configuration's run)."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and hyper-parameters of one demo run (tiny model, tiny world)."""

    n_train: int = 250
    n_test: int = 40
    n_realtime: int = 40
    #: real-time queries (the first of the held-out ones) for the slower rows: the constrained caller (a
    #: grammar per step) and the adapters served over HTTP
    n_realtime_subset: int = 10
    #: real-time queries for the base model without GLPFT: it seldom stops before the step limit (6 to
    #: 50 s for 10 queries), so it runs ReACT only, on the first few
    n_realtime_base: int = 5
    hidden_size: int = 128
    layers: int = 3
    vocab_size: int = 4000
    tokenizer: str = "phrases"
    #: input and output embeddings shared (copying a token from the prompt is then easy to learn)
    tie_embeddings: bool = True
    model_max_length: int = 1280
    #: causal-LM pretraining of the random model on the dialogues of other scenarios (stands in for the
    #: pretrained LLaMA the paper starts from: it knows the world's language and how to copy, not the
    #: prompts or the roles); copying values from the query grows with its steps (see README)
    n_pretrain: int = 3000
    pretrain_epochs: float = 4
    pretrain_lr: float = 3e-3
    stage1_epochs: float = 4
    stage2_epochs: float = 3
    #: the summarizer has one sample per answered trajectory (the planner and caller one per step), so it
    #: gets more epochs; the single LLM is trained for the steps of all three jobs together
    summarizer_epochs: float = 6
    stage1_lr: float = 3e-3
    stage2_lr: float = 1e-3
    lora_r: int = 16
    lora_lr: float = 3e-3
    batch_size: int = 8
    max_new_tokens: int = 64
    #: search limits: tree nodes (three per agent step) and agent steps per query
    max_depth: int = 24
    max_queries: int = 20
    #: torch threads; fixed so that a seed gives the same numbers on any machine
    threads: int = 2
    quick: bool = False


QUICK = DemoConfig(
    n_train=60, n_test=8, n_realtime=3, n_realtime_subset=2, n_realtime_base=2, hidden_size=64, layers=2, vocab_size=800,
    n_pretrain=100, pretrain_epochs=1, stage1_epochs=1, stage2_epochs=1, summarizer_epochs=1, max_new_tokens=32, max_depth=12, max_queries=8, quick=True,
)  # fmt: skip

#: real-time methods: one greedy chain, and DFSDT with the paper's sampling
METHODS = (("CoT@1", "cot"), ("DFS_woFilter_w2", "dfsdt"))
ALPHA, CONSTRAINED, LORA, SINGLE, UNTRAINED = (
    "α-UMi",
    "α-UMi + constrained caller",
    "α-UMi, LoRA stage 2 (served)",
    "Single-LLM",
    "Base model (no GLPFT)",
)


class Stages:
    """Runs named stages once: a stage's folder gets ``.done.json`` (wall time, result) when it ends."""

    def __init__(self, out: Path, force: bool):
        self.out, self.force, self.times = out, force, {}
        self.reused: list[str] = []

    def done(self, name: str) -> bool:
        return (self.out / name / ".done.json").exists() and not self.force

    def run(self, name: str, fn: Callable[[Path], Any]) -> Any:
        folder = self.out / name
        marker = folder / ".done.json"
        if marker.exists() and not self.force:
            done = json.loads(marker.read_text())
            self.times[name] = done["seconds"]
            self.reused.append(name)
            print(f"[demo] {name:<28} reused ({done['seconds']:.1f}s when it ran)", flush=True)
            return done["result"]
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        result = fn(folder)
        seconds = time.perf_counter() - t0
        marker.write_text(json.dumps({"seconds": seconds, "result": result}, indent=2))
        self.times[name] = seconds
        print(f"[demo] {name:<28} {seconds:6.1f}s", flush=True)
        return result


def _train(
    base: str, data: Path, out: Path, cfg: DemoConfig, seed: int, *, epochs: float = 1, lr: float,
    max_steps: int = -1, lora: bool = False,
) -> dict:  # fmt: skip
    from glpft import train
    from glpft.lora import LoraArguments

    train_args = train.TrainingArguments(
        output_dir=str(out), num_train_epochs=epochs, max_steps=max_steps, learning_rate=lr,
        lr_scheduler_type="cosine", warmup_steps=0.1, weight_decay=0.0, per_device_train_batch_size=cfg.batch_size,
        logging_steps=5, save_strategy="no", report_to="none", seed=seed, use_cpu=True,
    )  # fmt: skip
    lora_args = (
        LoraArguments(
            use_lora=True,
            lora_r=cfg.lora_r,
            lora_alpha=2 * cfg.lora_r,
            lora_dropout=0.0,
            lora_target_modules="all-linear",
        )  # fmt: skip
        if lora
        else LoraArguments()
    )
    train.train(
        train.ModelArguments(model_name_or_path=base),
        train.DataArguments(data_path=str(data), model_max_length=cfg.model_max_length),
        lora_args,
        train_args,
    )
    state = json.loads((out / "trainer_state.json").read_text())
    curve = [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]
    return {
        "steps": state["global_step"],
        "first_loss": curve[0][1] if curve else None,
        "last_loss": curve[-1][1] if curve else None,
        "curve": curve,
    }


def chain_text(answer: dict[str, Any], chain: list[dict[str, Any]], style: str = "backbone") -> str:
    """One message chain of an answer file as the plain text of a dialogue of the world, without any
    system prompt, tool documents or instructions: ``user: …</s>assistant: thought…</s>observation: …``
    up to the answer. ``style`` is a :func:`glpft.prompts.history_prefixes` style: ``backbone`` writes
    each step as the single LLM does (``thought\nAction: …\nAction Input: …``), ``full`` as α-UMi's
    history does (``thought Next: caller.</s>caller: Action: …``)."""
    from glpft import prepro
    from glpft.prompts import EOS_TEXT, history_prefixes

    record = prepro.stage1_from_answer(
        {"answer_generation": {**answer["answer_generation"], "train_messages": [chain]}}, "pretraining"
    )
    conv = prepro.stage2_from_stage1(record, "pretraining")["conversations"]
    return history_prefixes(conv, style)[-1].removesuffix(EOS_TEXT)  # training appends the EOS


def pretrain_corpus(n: int, seed: int, exclude: set[str]) -> list[dict[str, Any]]:
    """Role-file rows (empty input, so the loss covers every token) of the expert's chains on ``n``
    fresh scenarios of the world whose queries are not in ``exclude`` (the held-out and GLPFT queries).

    Scenarios alternate between the single-LLM and the α-UMi way of writing a dialogue, so the base
    model knows every token both systems read and write (as a pretrained LLaMA knows English) and
    favours neither: without the α-UMi half, the planner's words (``Next``, ``caller``) kept random
    embeddings that LoRA adapters, which leave embeddings frozen, could not learn."""
    import random

    from toolbench_multillm.demo_data import _unique_scenarios
    from toolbench_multillm.demo_expert import expert_answer

    rng = random.Random(f"demo-pretrain-{seed}")
    rows = []
    for i, scenario in enumerate(_unique_scenarios(rng, n, set(exclude), unsolvable_rate=0.1)):
        answer = expert_answer(scenario, rng)
        style = ("backbone", "full")[i % 2]
        for chain in answer["answer_generation"]["train_messages"]:
            rows.append({"tools": [], "history": [], "input": "", "target": chain_text(answer, chain, style)})
    return rows


def _static(
    test_file: Path, out: Path, cfg: DemoConfig, *, roles: dict[str, str] | None = None,
    backbone: str | None = None, constrained: str = "off", base_url: str | None = None,
) -> dict:  # fmt: skip
    from glpft import infer, metrics

    models = {f"{r}_model_name_or_path": path for r, path in (roles or {}).items()}
    infer.infer(
        infer.ModelArguments(**models, backbone_model_name_or_path=backbone),
        infer.DataArguments(data_path=str(test_file), max_input_length=cfg.model_max_length),
        infer.InferArguments(
            output_dir=str(out), decoding="greedy", per_device_eval_batch_size=16,
            max_new_tokens=cfg.max_new_tokens, prompt_prefix=True, constrained_decoding=constrained,
            backend="openai" if base_url else "hf", base_url=base_url, concurrency=4,
        ),
    )  # fmt: skip
    mode = "backbone" if backbone else "multi_agent"
    result = metrics.compute_metrics(metrics.read_predictions(out / "predictions.json"), mode)
    scores = {k: result[k] for k in metrics.METRIC_KEYS}
    write_json_atomic(out / "metrics.json", scores, indent=2)
    return scores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """An ASGI app (the tool server, or ``serve-models``) under uvicorn on 127.0.0.1, in this process."""

    def __init__(self, app, path: str = ""):
        import uvicorn

        self.port, self.path = _free_port(), path
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("demo: a local server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


def tool_server(cache_path: Path) -> ServerThread:
    """The project's tool server (FastAPI + uvicorn) serving the demo tools."""
    from toolbench_multillm import demo_apis
    from toolbench_multillm.cache import ResponseCache
    from toolbench_multillm.registry import ToolRegistry
    from toolbench_multillm.server import ServerConfig, create_app

    registry = ToolRegistry()
    demo_apis.register_demo_tools(registry)
    return ServerThread(
        create_app(ServerConfig(cache=ResponseCache(str(cache_path)), registry=registry)), "/virtual"
    )


#: the tool server of the demo world as a context manager (``with ToolServerThread(cache) as s: s.url``)
ToolServerThread = tool_server


def weight_megabytes(modules) -> float:
    """MB of the distinct parameter and buffer tensors of ``modules`` (shared tensors counted once)."""
    seen, total = set(), 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total / 2**20


def _decoding(method: str, cfg: DemoConfig, seed: int):
    from glpft.generation import DecodingConfig

    # greedy for one chain; DFSDT's siblings need the paper's sampling (temperature 0.5)
    return DecodingConfig(
        max_new_tokens=cfg.max_new_tokens, do_sample=method != "CoT@1", temperature=0.5, seed=seed
    )


def _agent(kind: str, paths: dict[str, str], method: str, cfg: DemoConfig, seed: int, model_url: str = ""):
    """The real-time agent of one report row: ``alpha``, ``constrained``, ``lora`` (served), ``single``."""
    from toolbench_multillm.agents import AlphaUmiAgent, BackboneAgent
    from toolbench_multillm.generators import RemoteGenerator, load_generators

    config = _decoding(method, cfg, seed)
    # the demo's models were trained on the training-time prefix, tool entries and observation text
    if kind == "single":
        gens = load_generators({"backbone": (paths["backbone"], False, "cpu")}, config, "fp32",
                               context_length=cfg.model_max_length, seed=seed)  # fmt: skip
        return BackboneAgent(gens["backbone"], prefix=TRAIN_PREFIX)
    if kind == "lora":
        from glpft.remote import CompletionsBackend

        backend = CompletionsBackend(model_url)
        gens = {r: RemoteGenerator(backend, r, config, cfg.model_max_length, seed) for r in AGENT_ROLES}
    else:
        specs = {r: (paths[r], False, "cpu") for r in AGENT_ROLES}
        gens = load_generators(specs, config, "fp32", context_length=cfg.model_max_length, seed=seed)
    return AlphaUmiAgent(gens["planner"], gens["caller"], gens["summarizer"], prefix=TRAIN_PREFIX,
                         constrained="caller" if kind == "constrained" else "off")  # fmt: skip


def _realtime(agent, queries: Path, out: Path, method: str, url: str, cfg: DemoConfig) -> dict:
    from toolbench_multillm import demo_report, demo_scenarios
    from toolbench_multillm.env import ToolEnv, make_client
    from toolbench_multillm.run_queries import answer_queries
    from toolbench_multillm.search import Limits
    from toolbench_multillm.tools import build_toolset, load_queries

    client = make_client("server", url)

    def make_env(query):
        return ToolEnv(build_toolset(query, docs="training"), client, observation_format="training")

    answers = out / "answers"
    limits = Limits(max_depth=cfg.max_depth, max_queries=cfg.max_queries)
    answer_queries(load_queries(queries), make_env, agent, method, answers, limits=limits, progress=False)
    return demo_report.pass_rate(queries, answers, method, demo_scenarios.check_answer)


def pass_rate(queries: Path, answers: Path, method: str, check: Callable[[dict, str | None], bool]) -> dict:
    """Exact answer check of each query's final answer (see :func:`demo_report.pass_rate`)."""
    from toolbench_multillm import demo_report

    return demo_report.pass_rate(queries, answers, method, check)


def _check_config(out: Path, config: dict[str, Any], force: bool) -> None:
    # finished stages are reused only by a run of the same configuration (fixes: `demo` and
    # `demo --quick` sharing a folder wrote a report about models it had not measured)
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


def run_demo(out: Path, cfg: DemoConfig, seed: int = 0, force: bool = False) -> dict:
    """Run every stage (reusing finished ones), write the report and return its numbers."""
    import torch
    import transformers

    from glpft import prepro
    from glpft.model_pool import ModelPool
    from glpft.serve_models import create_app
    from glpft.tiny_model import corpus_texts, make_tiny_model
    from toolbench_multillm import demo_data, demo_report

    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out}: is a file, not a folder")
    if cfg.tokenizer not in ("phrases", "words"):
        raise DemoError(f"--set tokenizer={cfg.tokenizer}: choose phrases or words")
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, {**asdict(cfg), "seed": seed}, force)
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
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

    def do_model(d: Path) -> dict:
        texts = corpus_texts([data / f"train_{r}.json" for r in ("backbone", *AGENT_ROLES)])
        make_tiny_model(
            d, texts, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.layers,
            seed=seed, phrases=cfg.tokenizer == "phrases", tie_embeddings=cfg.tie_embeddings,
        )  # fmt: skip
        cfg_json = json.loads((d / "config.json").read_text())
        from transformers import AutoModelForCausalLM

        n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(d).parameters())
        return {"parameters": n, "vocab": cfg_json["vocab_size"]}

    model_info = st.run("03_tiny_model", do_model)

    def do_pretrain(d: Path) -> dict:
        corpus = out / "03_pretrain_corpus.json"
        held = [json.loads(p.read_text())["answer_generation"]["query"]
                for p in (world / "answer" / "G1_answer").glob("*.json")]  # fmt: skip
        held += [q["query"] for q in json.loads((world / "queries" / "test.json").read_text())]
        write_json_atomic(corpus, pretrain_corpus(cfg.n_pretrain, seed, set(held)))
        return _train(str(out / "03_tiny_model"), corpus, d, cfg, seed, epochs=cfg.pretrain_epochs,
                      lr=cfg.pretrain_lr)  # fmt: skip

    pretrained = st.run("03_pretrain", do_pretrain)
    base = str(out / "03_pretrain")
    training = {
        "pretraining (base model)": pretrained,
        "stage 1: backbone": st.run(
            "04_stage1_backbone",
            lambda d: _train(
                base, data / "train_backbone.json", d, cfg, seed, epochs=cfg.stage1_epochs, lr=cfg.stage1_lr
            ),  # fmt: skip
        ),
    }
    backbone = str(out / "04_stage1_backbone")

    def stage2(job: str, prefix: str, lr: float, lora: bool = False) -> None:
        for role in AGENT_ROLES:
            training[f"{job}: {role}"] = st.run(
                f"{prefix}_{role}",
                lambda d, role=role: _train(
                    backbone,
                    data / f"train_{role}.json",
                    d,
                    cfg,
                    seed,
                    epochs=cfg.summarizer_epochs if role == "summarizer" else cfg.stage2_epochs,
                    lr=lr,
                    lora=lora,
                ),
            )

    stage2("stage 2", "05_stage2", cfg.stage2_lr)
    # the single LLM: the stage-1 backbone trained on, on the same backbone data, for as many optimizer
    # steps (of the same batch size) as the three stage-2 jobs took together
    stage2_steps = sum(training[f"stage 2: {r}"]["steps"] for r in AGENT_ROLES)
    training["single-LLM: backbone, continued"] = st.run(
        "05_single_llm",
        lambda d: _train(
            backbone, data / "train_backbone.json", d, cfg, seed, max_steps=stage2_steps, lr=cfg.stage2_lr
        ),  # fmt: skip
    )
    stage2("stage 2 LoRA", "05_lora", cfg.lora_lr, lora=True)

    # training curves on one axis: pretraining, then stage 1, then stage 2 or the single LLM's extra steps
    p_steps = training["pretraining (base model)"]["steps"]
    for job, r in training.items():
        r["step_offset"] = 0 if job.startswith("pretraining") else p_steps
        if job.startswith(("stage 2", "single-LLM")):
            r["step_offset"] = p_steps + training["stage 1: backbone"]["steps"]
    s1 = training["stage 1: backbone"]["steps"]
    budget_note = (
        f"Equal budget: α-UMi is stage 1 ({s1} steps) + planner, caller and summarizer "
        + " + ".join(str(training[f"stage 2: {r}"]["steps"]) for r in AGENT_ROLES)
        + f" steps = {s1 + stage2_steps}; the single LLM is the same stage-1 backbone trained on, on the same "
        f"backbone data, for {training['single-LLM: backbone, continued']['steps']} more steps = "
        f"{s1 + training['single-LLM: backbone, continued']['steps']} (batch {cfg.batch_size}, same model size)."
    )
    paths = {r: str(out / f"05_stage2_{r}") for r in AGENT_ROLES}
    single = str(out / "05_single_llm")
    lora = {r: str(out / f"05_lora_{r}") for r in AGENT_ROLES}

    def served_pool() -> ModelPool:
        """The stage-1 backbone with the three stage-2 adapters, unmerged, as ``serve-models`` loads them."""
        return ModelPool.load(
            base=backbone, adapters=lora, device="cpu", dtype="fp32", context_length=cfg.model_max_length
        )

    def model_server() -> tuple[ServerThread, ModelPool]:
        pool = served_pool()
        return ServerThread(create_app(pool), "/v1"), pool

    def do_memory(d: Path) -> dict:
        from transformers import AutoModelForCausalLM

        pool = served_pool()
        try:
            served = weight_megabytes({id(s.model): s.model for s in pool.models.values()}.values())
        finally:
            pool.close()
        full = weight_megabytes([AutoModelForCausalLM.from_pretrained(paths[r]) for r in AGENT_ROLES])
        return {"full": full, "lora": served}

    memory_mb = st.run("05_memory", do_memory)
    static = {
        ALPHA: st.run("06_static_alpha_umi", lambda d: _static(test_file, d, cfg, roles=paths)),
        CONSTRAINED: st.run(
            "06_static_constrained", lambda d: _static(test_file, d, cfg, roles=paths, constrained="caller")
        ),
    }
    needs_server = not (st.done("06_static_lora") and st.done("08_lora_dfsdt"))
    server, pool = model_server() if needs_server else (None, None)
    try:
        if server is not None:
            server.__enter__()
        roles_served = dict(zip(AGENT_ROLES, AGENT_ROLES))
        static[LORA] = st.run(
            "06_static_lora", lambda d: _static(test_file, d, cfg, roles=roles_served, base_url=server.url)
        )
        static[SINGLE] = st.run("06_static_single_llm", lambda d: _static(test_file, d, cfg, backbone=single))
        static[UNTRAINED] = st.run(
            "06_static_untrained",
            lambda d: _static(test_file, d, cfg, roles=dict.fromkeys(AGENT_ROLES, base)),
        )

        def realtime_queries(d: Path) -> None:
            rows = json.loads((world / "queries" / "test.json").read_text())
            (d / "queries.json").write_text(json.dumps(rows[: cfg.n_realtime], indent=2))
            (d / "queries_subset.json").write_text(json.dumps(rows[: cfg.n_realtime_subset], indent=2))
            (d / "queries_base.json").write_text(json.dumps(rows[: cfg.n_realtime_base], indent=2))

        st.run("07_realtime_queries", realtime_queries)
        queries = out / "07_realtime_queries" / "queries.json"
        subset = out / "07_realtime_queries" / "queries_subset.json"
        base_queries = out / "07_realtime_queries" / "queries_base.json"
        cot, dfsdt = METHODS
        rows = (
            (ALPHA, "alpha", queries, METHODS), (CONSTRAINED, "constrained", subset, (cot,)),
            (LORA, "lora", subset, (dfsdt,)), (SINGLE, "single", queries, METHODS),
            (UNTRAINED, "untrained", base_queries, (cot,)),
        )  # fmt: skip
        realtime: dict[str, dict] = {}
        for label, kind, qfile, methods in rows:
            realtime[label] = {}
            for method, short in methods:
                stage = f"08_{kind}_{short}"
                if st.done(stage):
                    realtime[label][method] = st.run(stage, lambda d: None)
                    continue
                role_paths = (
                    {**paths, "backbone": single} if kind != "untrained" else dict.fromkeys(AGENT_ROLES, base)
                )
                agent = _agent("alpha" if kind == "untrained" else kind, role_paths, method, cfg, seed,
                               server.url if server else "")  # fmt: skip
                with tool_server(out / "tool_cache.sqlite") as tools:
                    realtime[label][method] = st.run(
                        stage, lambda d, a=agent, m=method, q=qfile: _realtime(a, q, d, m, tools.url, cfg)
                    )
    finally:
        if server is not None:
            server.__exit__(None, None, None)
            pool.close()

    def quality(name: str) -> dict:
        return {"plan_em": static[name]["plan_em"], "action_em": static[name]["action_em"],
                "dfsdt_pass": realtime[name]["DFS_woFilter_w2"]["pass_rate"],
                "dfsdt_queries": realtime[name]["DFS_woFilter_w2"]["queries"]}  # fmt: skip

    memory = {
        "three full models": {"megabytes": memory_mb["full"], **quality(ALPHA)},
        "one backbone + three LoRA adapters, served": {"megabytes": memory_mb["lora"], **quality(LORA)},
    }
    run = {
        "config": {**asdict(cfg), "seed": seed},
        "machine": {
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },  # fmt: skip
        "wall_seconds": time.perf_counter() - t_start,
        "times": st.times,
        "reused": st.reused,
        "parameters": model_info["parameters"],
        "vocab": model_info["vocab"],
        "budget_note": budget_note,
        "headline": (ALPHA, SINGLE),
        "training": training,
        "static": static,
        "realtime": realtime,
        "memory": memory,
    }
    report = demo_report.write_report(out, run)
    write_json_atomic(
        out / "results.json", {k: run[k] for k in ("config", "static", "realtime", "memory")}, indent=2
    )
    print(f"[demo] report: {report}")
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="alpha-umi demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run (tiny sizes, numbers mean nothing): under 2 minutes"
    )
    ap.add_argument("--force", action="store_true", help="rerun every stage instead of reusing finished ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a DemoConfig field"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # per-stage lines instead of a dozen progress bars
    logging.basicConfig(level=logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    try:
        cfg = QUICK if args.quick else DemoConfig()
        for item in args.set:
            key, _, value = item.partition("=")
            if key not in DemoConfig.__dataclass_fields__:
                raise DemoError(f"--set {item}: no such setting")
            kind = type(getattr(cfg, key))
            try:
                if kind is bool and value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                typed = value.lower() in ("true", "1") if kind is bool else kind(value)
            except ValueError:
                raise DemoError(f"--set {item}: {key} takes a {kind.__name__}") from None
            cfg = replace(cfg, **{key: typed})
        if cfg.quick:
            print(f"[demo] {SMOKE}", flush=True)
        result = run_demo(Path(args.out), cfg, seed=args.seed, force=args.force)
    except DemoError as e:
        print(f"alpha-umi demo: error: {e}", file=sys.stderr)
        return 2
    print(f"[demo] done in {time.perf_counter() - t0:.0f}s", flush=True)
    for name in (ALPHA, SINGLE):
        m, rt = result["static"][name], result["realtime"][name]
        print(f"[demo] {name}: Plan ACC {m['plan_em']:.3f}, Act. EM {m['action_em']:.3f}, "
              + ", ".join(f"{k} pass {v['solved']}/{v['queries']}" for k, v in rt.items()))  # fmt: skip
    if cfg.quick:
        print(f"[demo] {SMOKE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serving the roles: memory of one base + 3 unmerged LoRA adapters vs full models, and HTTP throughput.

    python benchmarks/serve_models.py                                  # CPU, random ~105M Llama, ~3 min
    python benchmarks/serve_models.py --hidden-size 2048 --layers 16 --device cuda   # bigger, on a GPU

Builds locally (no downloads) a random Llama whose weights dominate memory (fp32, a few hundred MB at the
default size), three random LoRA adapters (r=8 on q/k/v/o, the training defaults) and the three models
they give merged. Then, each configuration in its own subprocess so that the measurements are
independent (RSS after loading and one forward per served name, psutil):

- ``one model``: one full checkpoint;
- ``base+3 adapters``: one :class:`glpft.model_pool.ModelPool` serving planner/caller/summarizer (and
  the base) from one base with the adapters unmerged (``alpha-umi serve-models --base … --adapter …``);
- ``three models``: a pool of the three merged checkpoints (``--model planner=… …``).

And throughput of ``/v1/completions`` through a real ``alpha-umi serve-models`` process (base + 3
adapters) with 1 and 16 concurrent clients (short prompts, greedy, ``--max-tokens``): requests/s and the
16-vs-1 ratio (batching must help). Clients share the machine with the server: compare ratios, not
absolute numbers. Each prompt is prefilled at batch size 1 (through its name's prefix cache; only
decoding is batched), so where compute, not weight reads, bounds a batch (a 2-core CPU) short prompts
cap the 16-vs-1 gain; ``rows/generate`` shows how full the batches were.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROLES = ("planner", "caller", "summarizer")
CORPUS = [
    "user: What is the weather in Paris?</s>assistant: I should call the weather api. Next: caller.</s>"
    'caller: Action: get_weather_for_weather\nAction Input: {"city": "Paris"}</s>'
    'observation: {"temp": 21}assistant: I know the answer. Next: conclusion.</s>'
    "conclusion: It is 21 degrees in Paris.</s>"
] * 50


def build(args, workdir: Path) -> dict[str, Path]:
    """The base model, three adapters and their merged checkpoints under ``workdir``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from glpft.lora import merge_lora
    from glpft.tiny_model import make_tiny_model

    paths = {"base": workdir / "base"}
    heads = max(1, args.hidden_size // 64)
    make_tiny_model(
        paths["base"],
        CORPUS,
        vocab_size=1000,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=heads,
    )
    for k, role in enumerate(ROLES):
        torch.manual_seed(k + 1)
        base = AutoModelForCausalLM.from_pretrained(paths["base"])
        lora = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
        )
        get_peft_model(base, lora).save_pretrained(workdir / f"{role}-lora")
        paths[f"{role}-lora"] = workdir / f"{role}-lora"
        paths[role] = merge_lora(workdir / f"{role}-lora", workdir / role)
        del base
        gc.collect()
    return paths


def measure(config: str, workdir: Path, device: str) -> dict:
    """In a fresh process: RSS (and CUDA memory) after loading ``config`` and one forward per name."""
    import psutil
    import torch

    from glpft.model_pool import ModelPool, SamplingParams
    from glpft.modeling import load_model_and_tokenizer

    proc = psutil.Process()
    before = proc.memory_info().rss
    pool = None
    if config == "one":
        model, tok = load_model_and_tokenizer(workdir / "base", device=device)
        with torch.inference_mode():
            model(input_ids=torch.tensor([tok("user: hi").input_ids], device=device))
    else:
        if config == "adapters":
            adapters = {r: str(workdir / f"{r}-lora") for r in ROLES}
            pool = ModelPool.load(base=str(workdir / "base"), adapters=adapters, device=device)
        else:
            pool = ModelPool.load(models={r: str(workdir / r) for r in ROLES}, device=device)
        for name in pool.names:
            pool.complete(name, ["user: hi"], SamplingParams(max_tokens=1, temperature=0))
    gc.collect()
    out = {"rss": proc.memory_info().rss, "rss_before": before}
    if device.startswith("cuda"):
        out["cuda"] = torch.cuda.memory_allocated()
    if pool is not None:
        pool.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn: http.client.HTTPConnection, body: dict) -> dict:
    conn.request(
        "POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"server answered {response.status}: {data}")
    return data


def get_stats(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/stats")
    return json.loads(conn.getresponse().read())


def run_clients(port: int, clients: int, duration: float, max_tokens: int) -> dict:
    """N threads, each one keep-alive connection sending short greedy planner prompts for ``duration``."""
    done = [0] * clients
    tokens = [0] * clients
    gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        gate.wait()
        i = 0
        while time.perf_counter() < stop_at[0]:
            prompt = f"user: What is the weather in city {k}-{i}?</s>assistant: "
            body = {"model": "planner", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
            data = post(conn, body)
            done[k] += 1
            tokens[k] += data["usage"]["completion_tokens"]
            i += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    stop_at[0] = start + duration
    gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": sum(done),
        "req_per_s": sum(done) / elapsed,
        "tok_per_s": sum(tokens) / elapsed,
    }


def throughput(args, paths: dict[str, Path], workdir: Path) -> list[dict]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "glpft.serve_models",
        "--base",
        str(paths["base"]),
        "--port",
        str(port),
        "--device",
        args.device,
        "--max_batch_size",
        str(args.max_batch_size),
        "--batch_wait_ms",
        str(args.batch_wait_ms),
        "--log_level",
        "warning",
    ]
    for role in ROLES:
        cmd += ["--adapter", f"{role}={paths[role + '-lora']}"]
    log_path = workdir / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for _ in range(2):
            post(
                warm,
                {"model": "planner", "prompt": "user: hi", "max_tokens": args.max_tokens, "temperature": 0},
            )
        best: dict[int, dict] = {}
        for _ in range(args.repeats):  # interleaved; the best of each (the machine may be shared)
            for n in args.clients:
                before = get_stats(port)
                row = run_clients(port, n, args.duration, args.max_tokens)
                after = get_stats(port)
                calls = after["generate_calls"] - before["generate_calls"]
                batched = after["mean_batch_size"] * after["generate_calls"]
                batched -= before["mean_batch_size"] * before["generate_calls"]
                row["mean_batch"] = batched / max(1, calls)
                if n not in best or row["req_per_s"] > best[n]["req_per_s"]:
                    best[n] = row
        return [best[n] for n in args.clients]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden-size", type=int, default=1024, help="model width (default: ~105M parameters)")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per client count and repeat")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best of each is shown")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="the server's --batch_wait_ms")
    ap.add_argument("--workdir", default=None, help="reuse models built here (default: a temporary folder)")
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one subprocess
    args = ap.parse_args(argv)

    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.workdir), args.device)))
        return 0
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="serve_models_bench_"))
    t0 = time.perf_counter()
    paths = (
        build(args, workdir)
        if not (workdir / "summarizer").is_dir()
        else {"base": workdir / "base", **{k: workdir / k for r in ROLES for k in (r, f"{r}-lora")}}
    )
    n_params = (
        sum(os.path.getsize(p) for p in (workdir / "base").glob("*.safetensors")) / 4
    )  # fp32 bytes → parameters
    print(
        f"built a random Llama of {n_params / 1e6:.0f}M parameters (fp32) + 3 adapters in {time.perf_counter() - t0:.0f} s"
    )

    memory = {}
    for config in ("one", "adapters", "three"):
        cmd = [
            sys.executable,
            __file__,
            "--measure",
            config,
            "--workdir",
            str(workdir),
            "--device",
            args.device,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        memory[config] = json.loads(out.strip().splitlines()[-1])
    rows = throughput(args, paths, workdir)

    mib = 1 << 20
    print(
        f"\nresident memory after loading + one forward per name (device={args.device}, cpus={os.cpu_count()})"
    )
    print(f"{'configuration':<18} {'RSS MiB':>8} {'net MiB':>8}")
    labels = {"one": "one model", "adapters": "base+3 adapters", "three": "three models"}
    for config, m in memory.items():
        print(f"{labels[config]:<18} {m['rss'] / mib:>8.0f} {(m['rss'] - m['rss_before']) / mib:>8.0f}")
    one = memory["one"]

    def ratio(config: str, key: str = "rss") -> float:
        if key == "net":
            return (memory[config]["rss"] - memory[config]["rss_before"]) / (one["rss"] - one["rss_before"])
        return memory[config][key] / one[key]

    print(
        f"base+3 adapters / one model: x{ratio('adapters'):.2f} RSS (net of the interpreter x{ratio('adapters', 'net'):.2f}; goal <= 1.15)"
    )
    print(f"three models / one model:    x{ratio('three'):.2f} RSS (net x{ratio('three', 'net'):.2f})")
    if "cuda" in one:
        print(
            f"CUDA memory: base+3 adapters / one model x{ratio('adapters', 'cuda'):.2f}, three x{ratio('three', 'cuda'):.2f}"
        )

    print(
        f"\n/v1/completions through alpha-umi serve-models (base + 3 adapters, planner, max_tokens={args.max_tokens}, "
        f"greedy, best of {args.repeats} x {args.duration:g} s)"
    )
    print(f"{'clients':>7} {'requests':>9} {'req/s':>8} {'tokens/s':>9} {'rows/generate':>13}")
    for r in rows:
        print(
            f"{r['clients']:>7} {r['requests']:>9} {r['req_per_s']:>8.2f} {r['tok_per_s']:>9.1f} {r['mean_batch']:>13.1f}"
        )
    for r in rows[1:]:
        print(
            f"{r['clients']} vs {rows[0]['clients']} clients: requests/s x{r['req_per_s'] / rows[0]['req_per_s']:.2f}"
        )
    print(f"total {time.perf_counter() - t0:.0f} s; models in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

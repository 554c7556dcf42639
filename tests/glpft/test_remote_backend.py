"""`--backend openai` (infer) and `--model_backend openai` (run-queries) against `alpha-umi serve-models`:
the same prompts as text, and with greedy decoding the same predictions and answers as in-process."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from glpft import infer as I
from glpft.model_pool import ModelPool
from glpft.serve_models import create_app

REPO = Path(__file__).resolve().parents[2]


class Served:
    """serve-models (three full checkpoints, one folder) on a real uvicorn server in a thread."""

    def __init__(self, model_dir):
        import uvicorn

        self.pool = ModelPool.load(models={r: str(model_dir) for r in ("planner", "caller", "summarizer")},
                                   device="cpu", dtype="fp32")  # fmt: skip
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(create_app(self.pool), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.pool.close()


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    with Served(tiny_model_dir) as url:
        yield url


def test_infer_openai_backend_gives_the_in_process_predictions(
    served, reference_dir, tiny_model_dir, tmp_path
):
    records = json.loads((reference_dir / "alpha_umi" / "test" / "out_of_domain.json").read_text())[:2]
    data = tmp_path / "test.json"
    data.write_text(json.dumps(records))
    common = [f"--data_path={data}", "--max_new_tokens=8", "--max_input_length=200", "--save_prompts"]
    local = [f"--{r}_model_name_or_path={tiny_model_dir}" for r in ("planner", "caller", "summarizer")]
    assert I.main(local + common + [f"--output_dir={tmp_path / 'local'}"]) == 0
    assert (
        I.main(common + ["--backend=openai", f"--base_url={served}", f"--output_dir={tmp_path / 'remote'}"])
        == 0
    )
    one = json.loads((tmp_path / "local" / "predictions.json").read_text())
    two = json.loads((tmp_path / "remote" / "predictions.json").read_text())
    assert one == two and len(one) > 3
    tokens = [[r["tokens"] for r in map(json.loads, (tmp_path / d / "prompts.jsonl").read_text().splitlines())]
              for d in ("local", "remote")]  # fmt: skip
    assert tokens[0] == tokens[1]  # the server cut over-long prompts to the same 200 ids


def test_infer_openai_backend_errors_are_one_line(tmp_path, capsys):
    data = tmp_path / "t.json"
    data.write_text("[]")
    assert I.main([f"--data_path={data}", f"--output_dir={tmp_path}", "--backend=openai"]) == 2
    assert "--base_url" in capsys.readouterr().err
    dead = [
        "--backend=openai",
        "--base_url=http://127.0.0.1:9/v1",
        f"--data_path={data}",
        f"--output_dir={tmp_path}",
    ]
    data.write_text(json.dumps([{"tools": [], "instruction": "q", "conversations": [
        {"from": "user", "value": "q"}, {"from": "assistant", "value": "x Next: give up."}]}]))  # fmt: skip
    assert I.main(dead) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("alpha-umi infer: error: ") and "127.0.0.1:9" in err


@pytest.mark.slow
def test_run_queries_openai_backend_gives_the_in_process_answers(
    served, reference_dir, tiny_model_dir, tmp_path
):
    from toolbench_multillm.demo import ToolServerThread
    from toolbench_multillm.run_queries import main

    queries = json.loads(
        (reference_dir / "stabletoolbench/solvable_queries/test_instruction/G1_instruction.json").read_text()
    )[:2]
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps(queries))
    common = ["--decoding", "greedy", "--max_new_tokens", "8", "--context_length", "512", "--backend", "server",
              "--method", "DFS_woFilter_w2", "--max_query_count", "4", "--input_query_file", str(qfile)]  # fmt: skip
    with ToolServerThread(tmp_path / "cache.sqlite") as tools:
        common += ["--service_url", tools.url]
        local = [f"--{r}_model_path={tiny_model_dir}" for r in ("planner", "caller", "summarizer")]
        assert (
            main(local + common + ["--output_answer_file", str(tmp_path / "local"), "--device", "cpu"]) == 0
        )
        remote = ["--model_backend", "openai", "--model_base_url", served]
        assert main(remote + common + ["--output_answer_file", str(tmp_path / "remote")]) == 0
    for q in queries:
        name = f"{q['query_id']}_DFS_woFilter_w2.json"
        one = json.loads((tmp_path / "local" / name).read_text())
        two = json.loads((tmp_path / "remote" / name).read_text())
        one["answer_generation"].pop("total_tokens"), two["answer_generation"].pop("total_tokens")
        assert one == two

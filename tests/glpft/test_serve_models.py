"""`alpha-umi serve-models` (glpft.serve_models, glpft.model_pool): OpenAI-compatible completions for
the roles, one tiny base + three unmerged LoRA adapters, through the official ``openai`` client."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import torch

from glpft.generation import DecodingConfig, generate
from glpft.model_pool import ModelPool, SamplingParams
from glpft.modeling import load_model_and_tokenizer, stop_token_ids
from glpft.parsing import cut_eos
from glpft.prompts import truncate_ids
from glpft.serve_models import create_app
from toolbench_multillm.generators import ModelGenerator

ROLES = ("planner", "caller", "summarizer")
PROMPTS = [
    "user: What is the weather in Paris?</s>assistant: ",
    'You have assess to the following apis:\n[{"Name": "get_weather_for_weather"}]\nThe conversation '
    "history is:\nuser: What is the weather in Lyon?</s>assistant: I should call the weather api. "
    "Next: caller.</s>caller: ",
    "conclusion: ",
    'observation: {"temp": 21}assistant: I know the answer. Next: conclusion.</s>conclusion: It is',
]


@pytest.fixture(scope="module")
def adapter_dirs(tiny_model_dir, tmp_path_factory):
    """Three random LoRA adapters (q_proj, v_proj) of the tiny model, as ``save_pretrained`` writes them."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for k, role in enumerate(ROLES):
        torch.manual_seed(100 + k)
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        peft_model = get_peft_model(
            base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        )
        out[role] = tmp_path_factory.mktemp(f"{role}_lora")
        peft_model.save_pretrained(out[role])
    return out


@pytest.fixture(scope="module")
def pool(tiny_model_dir, adapter_dirs):
    pool = ModelPool.load(
        base=str(tiny_model_dir),
        adapters={r: str(p) for r, p in adapter_dirs.items()},
        base_name="backbone",
        device="cpu",
        batch_wait_ms=5,
    )
    yield pool
    pool.close()


class Server:
    """An app on a real uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> openai.OpenAI:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="x", max_retries=0)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(pool):
    with Server(create_app(pool)) as c:
        yield c


def greedy(client, model, prompt, max_tokens=8, **kw):
    return client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, **kw)


def in_process(model, tok, prompts, max_tokens=8):
    """The raw in-process path: tokenizer BOS, glpft.generation.generate, decode(skip_special_tokens)."""
    ids = [tok(p).input_ids for p in prompts]
    out = generate(
        model, ids, stop_ids=stop_token_ids(tok, model), config=DecodingConfig(max_new_tokens=max_tokens)
    )
    return [tok.decode(o, skip_special_tokens=True) for o in out]


# --- the openai client against a real uvicorn --------------------------------------------------


def test_models_are_listed_with_their_names(client):
    models = client.models.list()
    assert sorted(m.id for m in models.data) == ["backbone", "caller", "planner", "summarizer"]
    assert all(m.owned_by == "alpha-umi" and m.object == "model" for m in models.data)
    assert client.models.retrieve("planner").id == "planner"


def test_greedy_completion_has_openai_shape_and_usage(client, tiny_model_dir):
    reply = greedy(client, "planner", PROMPTS[0])
    assert reply.object == "text_completion" and reply.model == "planner" and reply.id.startswith("cmpl-")
    (choice,) = reply.choices
    assert choice.index == 0 and choice.finish_reason in ("stop", "length") and choice.logprobs is None
    _, tok = load_model_and_tokenizer(tiny_model_dir)
    assert reply.usage.prompt_tokens == len(tok(PROMPTS[0]).input_ids)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert 0 < reply.usage.completion_tokens <= 8
    assert (choice.finish_reason == "length") == (reply.usage.completion_tokens == 8)


def test_each_adapter_serves_what_it_gives_merged_in_process(client, adapter_dirs):
    texts = {}
    for role, path in adapter_dirs.items():
        merged, tok = load_model_and_tokenizer(path)  # an adapter folder is merged at load
        expected_raw = in_process(merged, tok, PROMPTS)
        generator = ModelGenerator(merged, tok, DecodingConfig(max_new_tokens=8))
        expected = [c.text for c in generator.generate(PROMPTS)]
        texts[role] = [greedy(client, role, p).choices[0].text for p in PROMPTS]
        assert texts[role] == expected_raw
        assert [cut_eos(t).strip() for t in texts[role]] == expected
    assert texts["planner"] != texts["caller"] != texts["summarizer"] != texts["planner"]


def test_the_base_name_serves_the_base_with_adapters_off(client, tiny_model_dir):
    base, tok = load_model_and_tokenizer(tiny_model_dir)
    served = [greedy(client, "backbone", p).choices[0].text for p in PROMPTS]
    assert served == in_process(base, tok, PROMPTS)
    generator = ModelGenerator(base, tok, DecodingConfig(max_new_tokens=8))
    assert [cut_eos(t).strip() for t in served] == [c.text for c in generator.generate(PROMPTS)]
    assert served != [greedy(client, "planner", p).choices[0].text for p in PROMPTS]


def test_full_checkpoints_share_one_model_and_match_the_model_generator(tiny_model_dir):
    pool = ModelPool.load(
        models={"planner": str(tiny_model_dir), "caller": str(tiny_model_dir)}, device="cpu"
    )
    try:
        assert pool.models["planner"].model is pool.models["caller"].model
        assert pool.models["planner"].prefix_cache is not pool.models["caller"].prefix_cache
        with Server(create_app(pool)) as c:
            served = [greedy(c, "caller", p, max_tokens=12).choices[0].text for p in PROMPTS]
        model, tok = load_model_and_tokenizer(tiny_model_dir)
        generator = ModelGenerator(model, tok, DecodingConfig(max_new_tokens=12))
        assert [cut_eos(t).strip() for t in served] == [x.text for x in generator.generate(PROMPTS)]
    finally:
        pool.close()


def test_a_list_of_prompts_gives_one_choice_each_in_order(client):
    reply = greedy(client, "caller", PROMPTS)
    assert [c.index for c in reply.choices] == list(range(len(PROMPTS)))
    assert [c.text for c in reply.choices] == [greedy(client, "caller", p).choices[0].text for p in PROMPTS]


def test_n_samples_are_seeded_seed_then_seed_plus_one(client):
    def sample(seed, n):
        reply = client.completions.create(
            model="summarizer", prompt=PROMPTS[2], max_tokens=8, temperature=1.0, n=n, seed=seed
        )
        return [c.text for c in reply.choices]

    first = sample(123, 2)
    assert len(first) == 2 and first[0] != first[1]
    assert sample(123, 2) == first
    assert sample(124, 1) == first[1:]
    assert sample(7, 1) != first[:1]


def test_stop_strings_cut_the_text_before_the_first_one(client):
    full = greedy(client, "planner", PROMPTS[1], max_tokens=12).choices[0].text
    assert len(full) >= 4, full
    stop = full[2:4]
    (choice,) = greedy(client, "planner", PROMPTS[1], max_tokens=12, stop=[stop, "\x00never"]).choices
    assert choice.text == full[: full.find(stop)] and choice.finish_reason == "stop"


def test_truncate_prompt_tokens_keeps_the_last_ids_bos_included(client, adapter_dirs):
    merged, tok = load_model_and_tokenizer(adapter_dirs["caller"])
    ids = tok(PROMPTS[1]).input_ids
    k = 10
    reply = greedy(client, "caller", PROMPTS[1], extra_body={"truncate_prompt_tokens": k})
    assert reply.usage.prompt_tokens == k
    kept = truncate_ids(ids, k)
    assert kept[0] != tok.bos_token_id  # the BOS was cut like any id
    out = generate(
        merged, [kept], stop_ids=stop_token_ids(tok, merged), config=DecodingConfig(max_new_tokens=8)
    )
    assert reply.choices[0].text == tok.decode(out[0], skip_special_tokens=True)


def test_streaming_sends_the_result_as_one_chunk(client):
    expected = greedy(client, "planner", PROMPTS[0]).choices[0]
    chunks = list(greedy(client, "planner", PROMPTS[0], stream=True))
    assert len(chunks) == 1
    assert chunks[0].choices[0].text == expected.text
    assert chunks[0].choices[0].finish_reason == expected.finish_reason


def test_unknown_models_and_bad_requests_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError, match="not served"):
        greedy(client, "nobody", "hi")
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model="planner", prompt="hi", temperature=-1)
    with pytest.raises(openai.BadRequestError, match="echo"):
        client.completions.create(model="planner", prompt="hi", echo=True)
    with pytest.raises(openai.BadRequestError, match="best_of"):
        client.completions.create(model="planner", prompt="hi", best_of=2)
    with pytest.raises(openai.BadRequestError, match=r"5000.*> the context length 4096"):
        client.completions.create(model="planner", prompt="hi", max_tokens=5000)


# --- batching and the prefix cache ------------------------------------------------------------


def test_concurrent_requests_are_batched_and_give_the_one_at_a_time_texts(client, pool):
    prompts = [f"user: What is the weather in city {i}?</s>assistant: " for i in range(8)]
    jobs = [("planner" if i % 2 else "caller", p) for i, p in enumerate(prompts)]
    alone = [greedy(client, m, p).choices[0].text for m, p in jobs]
    before = len(pool.batch_sizes)
    pool.batch_wait = 2.0  # collection ends as soon as max_batch_size rows are queued
    try:
        with ThreadPoolExecutor(8) as ex:
            together = list(ex.map(lambda j: greedy(client, *j).choices[0].text, jobs))
    finally:
        pool.batch_wait = 0.005
    assert together == alone
    sizes = pool.batch_sizes[before:]
    assert sorted(sizes) == [4, 4], sizes  # one generate call per model name (adapter) in the batch


def test_a_request_extending_an_earlier_one_reuses_its_cached_prefix(pool):
    stats = pool.models["summarizer"].stats
    first = PROMPTS[1] + 'Action: get_weather_for_weather\nAction Input: {"city": "Lyon"}</s>'
    pool.complete("summarizer", [first], SamplingParams(max_tokens=4, temperature=0))
    prompt0, prefill0 = stats.prompt_tokens, stats.prefilled_tokens
    result = pool.complete("summarizer", [first + 'observation: {"temp": 18}'], SamplingParams(4, 0))
    assert stats.prompt_tokens - prompt0 == result.prompt_tokens
    assert stats.prefilled_tokens - prefill0 < result.prompt_tokens // 3


# --- in-process: every bad body is a 4xx with an OpenAI error ---------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"model": "planner"}',
        b'{"model": "planner", "prompt": [1, 2, 3]}',
        b'{"model": "planner", "prompt": []}',
        b'{"model": "planner", "prompt": "hi", "n": 0}',
        b'{"model": "planner", "prompt": "hi", "max_tokens": -1}',
        b'{"model": "planner", "prompt": "hi", "max_tokens": 2.5}',
        b'{"model": "planner", "prompt": "hi", "top_p": 0}',
        b'{"model": "planner", "prompt": "hi", "seed": "x"}',
        b'{"model": "planner", "prompt": "hi", "stop": [""]}',
        b'{"model": "planner", "prompt": "hi", "stop": 3}',
        b'{"model": "planner", "prompt": "\\ud800"}',
        b'{"model": "planner", "prompt": "hi", "logprobs": 1}',
        b'{"model": "planner", "prompt": "hi", "truncate_prompt_tokens": 0}',
        b'{"model": "planner", "prompt": "hi", "n": 257, "max_tokens": 1}',
        b'{"model": ["planner"], "prompt": "hi"}',
        b'{"model": "planner", "prompt": "hi", "stream": "yes"}',
    ],
)
def test_bad_bodies_get_a_4xx_with_a_reason(pool, body):
    from fastapi.testclient import TestClient

    with TestClient(create_app(pool)) as tc:
        r = tc.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert error["message"] and error["type"] and "code" in error and "Traceback" not in r.text


def test_health_and_unknown_routes(pool):
    from fastapi.testclient import TestClient

    with TestClient(create_app(pool)) as tc:
        assert tc.get("/health").json() == {"status": "ok", "models": pool.names}
        r = tc.get("/v1/nothing")
        assert r.status_code == 404 and r.json()["error"]["message"]
        assert tc.get("/v1/models/nobody").status_code == 404
        stats = tc.get("/stats").json()
        assert stats["generate_calls"] == len(pool.batch_sizes) and set(stats["models"]) == set(pool.names)


# --- the command line -------------------------------------------------------------------------


def run_cli(capsys, *args):
    from toolbench_multillm.cli import main

    rc = main(["serve-models", *args])
    err = capsys.readouterr().err.strip()
    return rc, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "planner=/nonexistent/planner"], "no such model folder"),
        (["--base", "{base}", "--adapter", "planner={base}"], "not a LoRA adapter folder"),
        (["--base", "{base}", "--adapter", "planner"], "expected NAME=PATH"),
        (["--base", "{base}", "--adapter", "planner={a}", "--adapter", "planner={a}"], "given twice"),
        (["--base", "{base}", "--adapter", "backbone={a}"], "given twice"),
        (["--adapter", "planner={a}"], "needs --base"),
        (["--base", "{base}", "--adapter", "planner=/nonexistent/lora"], "no such adapter folder"),
        (["--model", "planner={base}", "--max_batch_size", "0"], "out of range"),
        (["--model", "planner={base}", "--dtype", "int3"], "invalid choice"),
        (["--model", "planner={base}", "--device", "tpu"], "--device"),
        ([], "give --base"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(capsys, tiny_model_dir, adapter_dirs, args, message):
    args = [a.format(base=tiny_model_dir, a=adapter_dirs["planner"]) for a in args]
    rc, err = run_cli(capsys, *args)
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("alpha-umi serve-models: error: ") and message in err


def test_cli_refuses_a_port_in_use_before_loading(capsys, tiny_model_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, err = run_cli(capsys, "--model", f"planner={tiny_model_dir}", "--port", str(port))
    assert rc == 2 and "cannot listen" in err and len(err.splitlines()) == 1


def test_the_dispatcher_lists_serve_models():
    from toolbench_multillm.cli import COMMANDS

    assert COMMANDS["serve-models"][0] == "glpft.serve_models"

"""--constrained_decoding through the engine, static inference, the real-time agent and the servers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from glpft import constraints as C
from glpft import infer as I
from glpft.generation import DecodingConfig, generate
from glpft.metrics import compute_metrics, read_predictions
from glpft.modeling import load_model_and_tokenizer, stop_token_ids
from glpft.parsing import parse_action
from glpft.steps import build_steps, read_test_records, route


@pytest.fixture(scope="module")
def model_and_tok(tiny_model_dir):
    return load_model_and_tokenizer(tiny_model_dir)


@pytest.fixture(scope="module")
def caller_steps(reference_dir):
    records = read_test_records(str(reference_dir / "alpha_umi" / "test" / "out_of_domain.json"), limit=6)
    steps = [s for s in build_steps(records) if "Next: caller" in s.reference][:8]
    for s in steps:
        route(s, s.reference.split("</s>")[0].removeprefix("assistant: "))
    return steps


def _constrainer(model, tok):
    return C.Constrainer(
        tok, stop_token_ids(tok, model), vocab_size=model.get_output_embeddings().weight.shape[0]
    )


def _valid_call(text: str, tools) -> bool:
    name, args = parse_action(text)
    entry = next((t for t in tools if t["Name"] == name), None)
    if entry is None or not text.startswith("Action: "):
        return False
    try:
        value = json.loads(args)
    except ValueError:
        return False
    return isinstance(value, dict) and set(value) <= set(entry["input"])


def test_caller_outputs_always_name_an_offered_tool_with_json_arguments(model_and_tok, caller_steps):
    model, tok = model_and_tok
    ids = [tok(s.next_prompt.text).input_ids[-300:] for s in caller_steps]
    grammars = [C.role_grammar("caller", "caller", s.tools) for s in caller_steps]
    assert len({g for g in grammars}) > 1  # rows with different tool sets share one batch
    con = _constrainer(model, tok)
    config = DecodingConfig(max_new_tokens=128)
    stop = stop_token_ids(tok, model)
    free = generate(model, ids, stop_ids=stop, config=config, batch_size=8)
    outs = generate(
        model, ids, stop_ids=stop, config=config, batch_size=8, grammars=grammars, constrainer=con
    )
    texts = [tok.decode(o, skip_special_tokens=True) for o in outs]
    # rows that run out of tokens are closed, not cut: every output is a whole call
    assert all(_valid_call(t, s.tools) for t, s in zip(texts, caller_steps))
    assert con.closed_rows >= 1  # (the random model rambles inside a string until closed)
    assert not any(
        _valid_call(tok.decode(o, skip_special_tokens=True), s.tools) for o, s in zip(free, caller_steps)
    )
    assert con.changed_rows == len(caller_steps)  # the untrained model never writes a call by itself


@pytest.mark.parametrize("budget", [20, 40])
def test_planner_outputs_end_with_one_marker_within_the_token_budget(model_and_tok, caller_steps, budget):
    from glpft.parsing import parse_planner_output

    model, tok = model_and_tok
    ids = [tok(s.next_prompt.text).input_ids[-300:] for s in caller_steps]  # any text: the model is random
    stop = stop_token_ids(tok, model)
    grammar = C.role_grammar("all", "planner", [])
    con = _constrainer(model, tok)
    outs = generate(
        model, ids, stop_ids=stop, config=DecodingConfig(max_new_tokens=budget), batch_size=4,
        grammars=[grammar] * len(ids), constrainer=con,
    )  # fmt: skip
    for o in outs:
        assert len(o) <= budget
        text = tok.decode(o, skip_special_tokens=True)
        assert text.endswith((" Next: caller.", " Next: conclusion.", " Next: give up.")), text
        assert parse_planner_output(text).had_marker  # found, not appended
    assert con.closed_rows >= 1  # the untrained model never ends by itself: the budget closed it


def test_required_inputs_are_written_even_when_the_budget_closes_the_call(model_and_tok, caller_steps):
    model, tok = model_and_tok
    step, tool = next((s, t) for s in caller_steps for t in s.tools if len(t["input"]) >= 2)
    name, keys = tool["Name"], list(tool["input"])[-2:]
    grammar = C.role_grammar("caller", "caller", [tool], {name: keys})
    ids = [tok(step.next_prompt.text).input_ids[-300:]]
    out = generate(
        model, ids, stop_ids=stop_token_ids(tok, model), config=DecodingConfig(max_new_tokens=160),
        grammars=[grammar], constrainer=_constrainer(model, tok),
    )[0]  # fmt: skip
    text = tok.decode(out, skip_special_tokens=True)
    called, args = parse_action(text)
    assert called == name and set(keys) <= set(json.loads(args)), text


def test_a_grammar_the_free_output_satisfies_changes_nothing(model_and_tok, caller_steps):
    model, tok = model_and_tok
    ids = [tok(s.next_prompt.text).input_ids[-300:] for s in caller_steps]
    stop, config = stop_token_ids(tok, model), DecodingConfig(max_new_tokens=24)
    free = generate(model, ids, stop_ids=stop, config=config)
    # a grammar that the free greedy output satisfies (its own text, or something else)
    # (outputs cut inside a UTF-8 character have no text form: those rows stay unconstrained)
    texts = [tok.decode(o, skip_special_tokens=True) for o in free]
    grammars = [None if "\ufffd" in t else f'root ::= {C._ebnf_literal(t)} | "zzz"' for t in texts]
    assert any(grammars)
    con = _constrainer(model, tok)
    same = generate(model, ids, stop_ids=stop, config=config, grammars=grammars, constrainer=con)
    assert same == free and con.changed_tokens == 0


def test_sampling_under_a_grammar_is_reproducible(model_and_tok, caller_steps):
    model, tok = model_and_tok
    ids = [tok(s.next_prompt.text).input_ids[-300:] for s in caller_steps[:3]]
    grammars = [C.role_grammar("all", "caller", s.tools) for s in caller_steps[:3]]
    config = DecodingConfig(max_new_tokens=32, do_sample=True, temperature=0.8)
    runs = [
        generate(model, ids, stop_ids=stop_token_ids(tok, model), config=config, seeds=[1, 2, 3], grammars=grammars,
                 constrainer=_constrainer(model, tok))
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0] == runs[1]


def test_infer_with_caller_constraints_has_no_hallucinated_calls(
    reference_dir, tiny_model_dir, tmp_path, capsys
):
    records = json.loads((reference_dir / "alpha_umi" / "test" / "out_of_domain.json").read_text())[:3]
    data = tmp_path / "t.json"
    data.write_text(json.dumps(records))
    flags = [f"--{r}_model_name_or_path={tiny_model_dir}" for r in ("planner", "caller", "summarizer")]
    flags += [f"--data_path={data}", "--max_new_tokens=160", "--max_input_length=300"]
    assert I.main(flags + [f"--output_dir={tmp_path / 'off'}"]) == 0
    assert I.main(flags + [f"--output_dir={tmp_path / 'on'}", "--constrained_decoding=caller"]) == 0
    assert "outputs the grammar changed: caller" in capsys.readouterr().out
    on_rows = read_predictions(tmp_path / "on" / "predictions.json")
    assert compute_metrics(on_rows)["hallu_rate"] == 0
    calls = [r for r in on_rows if "model_input_for_caller" in r]
    assert calls
    names = [parse_action(r["predictions"].split("</s>caller: ", 1)[1])[0] for r in calls]
    assert all(n in {t["Name"] for t in r["tools"]} for n, r in zip(names, calls))  # an offered tool, always
    # arguments are JSON of the tool's parameters (unless the token limit cut a string value short)
    assert any(_valid_call(r["predictions"].split("</s>caller: ", 1)[1], r["tools"]) for r in calls)
    off_calls = [
        r for r in read_predictions(tmp_path / "off" / "predictions.json") if "model_input_for_caller" in r
    ]
    assert not any(_valid_call(r["predictions"].split("</s>caller: ", 1)[1], r["tools"]) for r in off_calls)
    assert I.main(flags + [f"--output_dir={tmp_path / 'x'}", "--constrained_decoding=maybe"]) == 2


class Recorder(ThreadingHTTPServer):
    """A scripted completions server that records request bodies and answers ``reply``."""

    def __init__(self, reply=""):
        self.bodies = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                data = json.dumps({"choices": [{"text": reply, "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.mark.parametrize("server, field", [("vllm", "structured_outputs"), ("vllm-legacy", "guided_grammar"),
                                           ("sglang", "ebnf")])  # fmt: skip
def test_the_openai_backend_sends_the_grammar_in_the_servers_field(reference_dir, tmp_path, server, field):
    records = json.loads((reference_dir / "alpha_umi" / "test" / "out_of_domain.json").read_text())[:1]
    data = tmp_path / "t.json"
    data.write_text(json.dumps(records))
    srv = Recorder()
    try:
        argv = ["--backend=openai", f"--base_url={srv.url}", f"--data_path={data}", f"--output_dir={tmp_path}",
                "--constrained_decoding=all", f"--structured_outputs={server}"]  # fmt: skip
        assert I.main(argv) == 0
    finally:
        srv.shutdown()
    by_model = {}
    for body in srv.bodies:
        by_model.setdefault(body["model"], []).append(body)
    assert set(by_model) >= {"planner", "caller"}
    for body in by_model["planner"] + by_model["caller"]:
        value = body[field]["grammar"] if field == "structured_outputs" else body[field]
        assert value.startswith("root ::=")
    assert all(field not in b for b in by_model.get("summarizer", []))  # the summarizer is free
    with pytest.raises(ValueError, match="lmdeploy"):
        C.server_params('root ::= "x"', "lmdeploy")


def test_a_server_that_ignores_the_grammar_is_a_one_line_error(reference_dir, tmp_path, capsys):
    records = json.loads((reference_dir / "alpha_umi" / "test" / "out_of_domain.json").read_text())[:1]
    data = tmp_path / "t.json"
    data.write_text(json.dumps(records))
    srv = Recorder("Action: not_offered\nAction Input: {}")  # what a server without grammars would say
    try:
        argv = ["--backend=openai", f"--base_url={srv.url}", f"--data_path={data}", f"--output_dir={tmp_path}",
                "--constrained_decoding=caller", "--structured_outputs=sglang"]  # fmt: skip
        assert I.main(argv) == 2
    finally:
        srv.shutdown()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ignored the structured-output field ebnf" in err[0], err
    assert not (tmp_path / "predictions.json").exists()


def test_serve_models_honours_a_grammar_and_rejects_a_bad_one(tiny_model_dir):
    from fastapi.testclient import TestClient

    from glpft.model_pool import ModelPool
    from glpft.serve_models import create_app

    pool = ModelPool.load(models={"caller": str(tiny_model_dir)}, device="cpu", dtype="fp32")
    try:
        client = TestClient(create_app(pool))
        tools = [{"Name": "get_weather_for_weather", "function": "", "input": {"city": "string, city"}}]
        grammar = C.role_grammar("caller", "caller", tools)
        body = {
            "model": "caller",
            "prompt": "user: weather?</s> caller: ",
            "max_tokens": 40,
            "temperature": 0,
        }
        r = client.post("/v1/completions", json={**body, **C.server_params(grammar, "serve-models")})
        assert r.status_code == 200
        text = r.json()["choices"][0]["text"]
        assert text.startswith("Action: get_weather_for_weather\nAction Input: {")
        bad = client.post("/v1/completions", json={**body, "guided_grammar": "root ::= ("})
        assert bad.status_code == 400 and "invalid grammar" in bad.json()["error"]["message"]
    finally:
        pool.close()

"""Structured decoding: caller/planner grammars, the batched constraint state, server request fields."""

from __future__ import annotations

import glob
import json

import pytest
import torch

from glpft.constraints import Constrainer, caller_grammar, planner_grammar, request_params
from glpft.prompts import caller_turn

xgr = pytest.importorskip("xgrammar", reason="structured decoding needs xgrammar")

WEATHER = {
    "Name": "get_weather_for_weather",
    "function": "Get the weather of a city",
    "input": {"city": "string, city name", "days": "integer, how many days"},
}
ODD = {
    "Name": "users('UserName') \"quoted\" back\\slash ünï 中文 sp ace\ttab",
    "function": "odd",
    "input": {"date\t": "string", 'q"k': "boolean, a flag", "n": "number", "any": "ENUM, whatever"},
}
EMPTY = {"Name": "list_all_for_demo", "function": "no parameters", "input": {}}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def con(tokenizer):
    return Constrainer(tokenizer, [tokenizer.eos_token_id])


def accepts(con: Constrainer, grammar: str, text: str) -> bool:
    """Whole-text match: every character accepted and the grammar complete at the end."""
    matcher = xgr.GrammarMatcher(con.compile(grammar))
    return matcher.accept_string(text) and matcher.is_completed()


def call(tool, args: dict, indent: int | None = 2) -> str:
    return caller_turn(tool["Name"], json.dumps(args, indent=indent) if args else "{}")


def example_args(tool) -> dict:
    """A value of the declared type for every input, in the entry's order."""
    values = {
        "string": "x y",
        "integer": -3,
        "number": 2.5,
        "boolean": True,
        "object": {"a": [1]},
        "array": [1],
    }
    return {k: values.get(str(v).split(",")[0].strip().lower(), None) for k, v in tool["input"].items()}


# --- caller grammar -----------------------------------------------------------------------------


def test_caller_grammar_is_ebnf_that_xgrammar_parses_back(con):
    text = caller_grammar([WEATHER, ODD, EMPTY])
    assert "root ::=" in text
    assert str(xgr.Grammar.from_ebnf(text)) == text  # the text a server receives is the grammar


def test_caller_grammar_accepts_exactly_one_offered_tool_and_its_arguments(con):
    g = caller_grammar([WEATHER, EMPTY])
    assert accepts(con, g, call(WEATHER, {"city": "Paris", "days": 3}))
    assert accepts(con, g, 'Action: get_weather_for_weather\nAction Input: {"city": "Paris"}')  # compact
    assert accepts(con, g, call(WEATHER, {}))  # every key optional
    assert not accepts(con, g, call({"Name": "get_weather"}, {"city": "Paris"}))  # not offered
    assert not accepts(con, g, call(WEATHER, {"town": "Paris"}))  # not a parameter
    assert not accepts(con, g, call(WEATHER, {"city": 3}))  # wrong type
    assert not accepts(con, g, call(WEATHER, {"days": 1.5}))  # integer
    assert not accepts(con, g, call(WEATHER, {"city": "Paris"}) + "\nThought: more")  # nothing after
    assert not accepts(con, g, 'Action: get_weather_for_weather\nAction Input: {"city": "a", "city": "b"}')


def test_caller_grammar_keeps_the_entry_order_unless_any_order(con):
    swapped = 'Action: get_weather_for_weather\nAction Input: {"days": 2, "city": "Paris"}'
    assert not accepts(con, caller_grammar([WEATHER]), swapped)
    try:
        assert accepts(con, caller_grammar([WEATHER], any_order=True), swapped)
    except ValueError as e:  # an older xgrammar without any_order
        assert "any_order" in str(e)


def test_caller_grammar_integer_as_number_accepts_toolbench_coordinates(con):
    coords = call(WEATHER, {"days": -122.4194})
    assert not accepts(con, caller_grammar([WEATHER]), coords)
    assert accepts(con, caller_grammar([WEATHER], integer_as_number=True), coords)


def test_caller_grammar_escapes_odd_names_and_keys(con):
    g = caller_grammar([ODD, WEATHER])
    args = {"date\t": "d", 'q"k': False, "n": 1e-3, "any": {"free": [None, "json"]}}
    assert accepts(con, g, call(ODD, args))
    assert accepts(con, g, call(ODD, args, indent=None))
    assert accepts(con, g, call(ODD, {"any": "a string is a JSON value too"}))
    assert not accepts(con, g, call(ODD, {"n": "1"}))
    assert not accepts(con, g, call({"Name": ODD["Name"].replace("\\", "")}, {}))


def test_caller_grammar_tool_without_parameters_takes_exactly_empty_braces(con):
    g = caller_grammar([EMPTY])
    assert accepts(con, g, "Action: list_all_for_demo\nAction Input: {}")
    for bad in ("{ }", '{"a": 1}', "{}\n", "[]"):
        assert not accepts(con, g, "Action: list_all_for_demo\nAction Input: " + bad)


def test_caller_grammar_required_keys_are_mandatory(con):
    g = caller_grammar([WEATHER, EMPTY], required={"get_weather_for_weather": ["city"]})
    assert accepts(con, g, call(WEATHER, {"city": "Paris"}))
    assert not accepts(con, g, call(WEATHER, {"days": 2}))
    assert not accepts(con, g, call(WEATHER, {}))


def test_caller_grammar_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="no tools"):
        caller_grammar([])
    with pytest.raises(ValueError, match="'town'"):
        caller_grammar([WEATHER], required={WEATHER["Name"]: ["town"]})
    with pytest.raises(ValueError, match="not offered"):
        caller_grammar([WEATHER], required={"other": ["x"]})
    with pytest.raises(ValueError, match="Name"):
        caller_grammar([{"function": "nameless", "input": {}}])


def test_caller_grammar_first_entry_of_a_repeated_name_wins(con):
    twin = dict(WEATHER, input={"zip": "integer"})
    g = caller_grammar([WEATHER, twin])
    assert accepts(con, g, call(WEATHER, {"city": "Paris"}))
    assert not accepts(con, g, call(WEATHER, {"zip": 1}))


def test_caller_grammar_accepts_gold_calls_of_the_training_sample(con, reference_dir):
    rows = json.loads((reference_dir / "alpha_umi/train-example/train_caller.json").read_text())
    strict_ok = 0
    for row in rows:
        name, _, args = row["target"].removeprefix("Action: ").partition("\nAction Input: ")
        inputs = next(t["input"] for t in row["tools"] if t["Name"] == name)
        obj = json.loads(args)
        in_order = list(obj) == [k for k in inputs if k in obj]
        typed = all(not isinstance(v, float) for v in obj.values())  # ToolBench NUMBER → "integer"
        strict = accepts(con, caller_grammar(row["tools"]), row["target"])
        assert strict == (in_order and typed), row["target"]
        strict_ok += strict
        loose = caller_grammar(row["tools"], integer_as_number=True)
        assert accepts(con, loose, row["target"]) or not in_order
    assert strict_ok >= len(rows) - 5


@pytest.mark.parametrize(
    "level", ["G1_instruction", "G1_category", "G1_tool", "G2_instruction", "G3_instruction"]
)
def test_caller_grammar_of_real_toolbench_toolsets(con, reference_dir, level):
    from toolbench_multillm.tools import build_toolset

    path = reference_dir / f"stabletoolbench/solvable_queries/test_instruction/{level}.json"
    queries = json.loads(path.read_text())

    # the queries whose tool lists have the oddest names and keys, plus the first few
    def params(q):
        return [p["name"] for a in q["api_list"] for p in a.get("required_parameters") or []]

    odd = [q for q in queries if any(not str(k).isidentifier() for k in params(q))]
    for query in (queries[:3] + odd[:3])[:6]:
        tools = build_toolset(query).prompt_tools
        g = caller_grammar(tools)
        xgr.Grammar.from_ebnf(g)
        for tool in tools:
            assert accepts(con, g, call(tool, example_args(tool))), tool["Name"]
            assert not accepts(con, g, call(tool, {"not_a_parameter_xyz": 1})), tool["Name"]


def test_caller_grammar_of_out_of_domain_tool_lists(con, reference_dir):
    records = json.loads((reference_dir / "alpha_umi/test/out_of_domain.json").read_text())
    for record in records[::50]:
        g = caller_grammar(record["tools"])
        first = {}  # names cut to 64 characters collide here; the first entry of a name wins
        for tool in record["tools"]:
            first.setdefault(tool["Name"], tool)
        for tool in first.values():
            assert accepts(con, g, call(tool, example_args(tool), indent=None)), tool["Name"]


def test_reference_names_with_odd_characters_are_covered(reference_dir):
    from toolbench_multillm.tools import build_toolset

    keys = set()
    for path in sorted(
        glob.glob(str(reference_dir / "stabletoolbench/solvable_queries/test_instruction/*.json"))
    ):
        for query in json.loads(open(path).read())[:40]:
            keys |= {k for t in build_toolset(query).prompt_tools for k in t["input"]}
    assert any(not k.isidentifier() for k in keys)  # e.g. "x-user-timezone", "date\t"


# --- planner grammar ----------------------------------------------------------------------------


@pytest.mark.parametrize("marker", [" Next: caller.", " Next: conclusion.", " Next: give up."])
def test_planner_grammar_ends_with_exactly_one_marker(con, marker):
    g = planner_grammar()
    assert accepts(con, g, "I should call the weather api.\n" + marker)
    assert accepts(con, g, marker)
    assert not accepts(con, g, "I should call the weather api.")
    assert not accepts(con, g, "I should call" + marker[:-1])
    assert not accepts(con, g, "I should call" + marker.replace(" Next", "Next"))


def test_planner_grammar_bounds_the_thought(con):
    assert accepts(con, planner_grammar(10), "x" * 10 + " Next: caller.")
    assert not accepts(con, planner_grammar(10), "x" * 11 + " Next: caller.")
    assert accepts(con, planner_grammar(None), "x" * 3000 + " Next: caller.")
    with pytest.raises(ValueError, match="max_chars"):
        planner_grammar(-1)


def test_planner_row_stops_at_its_first_marker(con, tokenizer):
    row = con.row(planner_grammar())
    for t in tokenizer.encode("I know the answer. Next: conclusion.", add_special_tokens=False):
        assert row.accept(t)
    assert row.complete and not row.done
    logits = torch.zeros(1, con.vocab_size)
    row.mask(logits)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [tokenizer.eos_token_id]
    assert not row.accept(tokenizer.encode(" more", add_special_tokens=False)[0])
    assert row.accept(tokenizer.eos_token_id) and row.done


# --- constraint state in a decoding loop --------------------------------------------------------


def allowed(logits_row: torch.Tensor) -> set[int]:
    return set(torch.isfinite(logits_row).nonzero().flatten().tolist())


def test_row_accepts_a_valid_call_token_by_token_until_done(con, tokenizer):
    row = con.row(caller_grammar([WEATHER, EMPTY]))
    ids = tokenizer.encode(call(WEATHER, {"city": "Paris"}), add_special_tokens=False)
    for t in ids:
        logits = torch.zeros(con.vocab_size)
        row.mask(logits)
        assert torch.isfinite(logits[t])  # the mask keeps the valid continuation
        assert row.accept(t) and not row.done
    assert row.complete
    logits = torch.zeros(con.vocab_size)
    row.mask(logits)
    assert allowed(logits) == {tokenizer.eos_token_id}
    assert row.accept(tokenizer.eos_token_id) and row.done
    assert not row.accept(ids[0]) and row.rejected_tokens == 1


def test_row_rejects_and_masks_invalid_continuations(con, tokenizer):
    row = con.row(caller_grammar([WEATHER]))
    for t in tokenizer.encode("Action: ", add_special_tokens=False):
        assert row.accept(t)
    logits = torch.zeros(1, con.vocab_size)
    row.mask(logits)
    bad = tokenizer.encode("Paris", add_special_tokens=False)[0]
    assert logits[0, bad] == float("-inf") and logits[0, tokenizer.eos_token_id] == float("-inf")
    assert not row.accept(bad) and not row.accept(tokenizer.eos_token_id)
    assert row.accept(tokenizer.encode("get", add_special_tokens=False)[0])  # state unchanged by rejects


def test_batched_rows_with_different_tool_sets_share_one_bitmask(con, tokenizer):
    prefix = tokenizer.encode("Action: ", add_special_tokens=False)
    rows = [
        con.row(caller_grammar([WEATHER])),
        None,
        con.row(caller_grammar([EMPTY])),
        con.row(planner_grammar()),
    ]
    for r in (rows[0], rows[2]):
        for t in prefix:
            assert r.accept(t)
    logits = torch.randn(4, con.vocab_size, generator=torch.Generator().manual_seed(0))
    untouched = logits[1].clone()
    con.mask(logits, rows)
    assert torch.equal(logits[1], untouched)  # the row without a grammar
    for i in (0, 2, 3):  # each row masked exactly as it would be alone
        alone = torch.randn(con.vocab_size)
        rows[i].mask(alone)
        assert allowed(logits[i]) == allowed(alone)
    assert allowed(logits[0]) != allowed(logits[2])
    assert tokenizer.encode("get", add_special_tokens=False)[0] in allowed(logits[0])
    assert tokenizer.encode("list", add_special_tokens=False)[0] in allowed(logits[2])


def greedy(con, tokenizer, grammar, steps: int, seed: int, masked: bool):
    row = con.row(grammar)
    gen = torch.Generator().manual_seed(seed)
    out, kept = [], []
    for _ in range(steps):
        logits = torch.randn(1, con.vocab_size, generator=gen)
        top = int(logits.argmax())
        if masked:
            row.mask(logits)
        t = int(logits.argmax())
        kept.append(t == top)
        assert row.accept(t) or not masked
        out.append(t)
        if t == tokenizer.eos_token_id:
            break
    return row, out, kept


def test_mask_never_changes_an_allowed_greedy_choice(tokenizer):
    con = Constrainer(tokenizer, [tokenizer.eos_token_id])
    g = caller_grammar([WEATHER, EMPTY])
    text = call(WEATHER, {"city": "Paris"})
    target = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    # the unmasked argmax already spells a valid call: identical with the mask on, nothing changed
    row = con.row(g)
    gen = torch.Generator().manual_seed(1)
    for t in target:
        logits = torch.randn(1, con.vocab_size, generator=gen)
        logits[0, t] = 10.0
        row.mask(logits)
        assert int(logits.argmax()) == t and row.accept(t)
    assert row.done and row.changed_tokens == 0 and con.changed_tokens == 0
    # random logits: wherever the unmasked argmax is allowed the masked one equals it
    row, out, kept = greedy(con, tokenizer, g, steps=60, seed=2, masked=True)  # every pick accepted
    assert row.changed_tokens == kept.count(False) > 0
    assert con.changed_rows == 1 and con.changed_tokens == row.changed_tokens
    assert tokenizer.decode(out).startswith("Action: ")


def test_sampling_under_the_mask_is_reproducible(con, tokenizer):
    def sample(seed: int) -> list[int]:
        row = con.row(caller_grammar([WEATHER, ODD, EMPTY]))
        gen, logit_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(7)
        out = []
        for _ in range(200):
            logits = torch.randn(1, con.vocab_size, generator=logit_gen)
            row.mask(logits)
            t = int(torch.multinomial(logits.softmax(-1)[0], 1, generator=gen))
            assert row.accept(t)
            out.append(t)
            if row.done:
                break
        return out

    first = sample(3)
    assert first == sample(3)
    assert first != sample(4)


def test_grammars_compile_once_per_text_with_lru_eviction(tokenizer):
    con = Constrainer(tokenizer, [tokenizer.eos_token_id], cache_size=2)
    g1, g2, g3 = caller_grammar([WEATHER]), caller_grammar([EMPTY]), planner_grammar()
    for g in (g1, g1, g2, g1, g3, g2):
        con.row(g)
    assert con.compiled == 4 and con.cache_hits == 2  # g2 evicted by g3 after g1 was used again
    assert con.row(None) is None


def test_mask_checks_the_logits_width(con):
    row = con.row(planner_grammar())
    with pytest.raises(ValueError, match="vocab_size"):
        row.mask(torch.zeros(1, con.vocab_size + 8))
    with pytest.raises(ValueError, match="index"):
        row.mask(torch.zeros(2, con.vocab_size))
    logits = torch.zeros(3, con.vocab_size)
    row.mask(logits, index=1)
    assert torch.isfinite(logits[0]).all() and torch.isfinite(logits[2]).all()
    assert not torch.isfinite(logits[1]).all()


# --- servers ------------------------------------------------------------------------------------


def test_request_params_for_each_server():
    g = planner_grammar()
    assert request_params(g, "vllm") == {"structured_outputs": {"grammar": g}}
    assert request_params(g, "vllm", legacy_vllm=True) == {"guided_grammar": g}
    assert request_params(g, "sglang") == {"ebnf": g}
    with pytest.raises(ValueError, match="'tgi'"):
        request_params(g, "tgi")

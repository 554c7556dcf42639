"""The batched generation engine (glpft.generation): same greedy tokens as one-at-a-time generate()."""

from __future__ import annotations

import pytest
import torch

from glpft.generation import DecodingConfig, generate, generate_one_by_one, plan_batches
from glpft.modeling import load_model_and_tokenizer, stop_token_ids

HEAD = (
    'You have assess to the following apis:\n{"Name": "get_weather_for_weather", "function": "Get the '
    'weather of a city"}\nThe conversation history is:\nuser: What is the weather in Paris?</s>'
)
STEPS = [
    "assistant: I should call the weather api. Next: caller.</s>",
    'caller: Action: get_weather_for_weather\nAction Input: {"city": "Paris"}</s>observation: {"temp": 21}',
    "assistant: I know the answer. Next: conclusion.</s>",
]
TAIL = "\nYou are the assistant to plan what to do next. assistant: "


def trajectory_prompts(tokenizer) -> tuple[list[list[int]], list[int]]:
    """Prompts shaped like the static test set: steps of two trajectories sharing growing prefixes."""
    texts, groups = [], []
    for g, head in enumerate((HEAD, HEAD.replace("Paris", "Lyon and Nice"))):
        history = ""
        for step in [""] + STEPS[: 3 - g]:
            history += step
            texts.append(head + history + TAIL)
            groups.append(g)
    texts.append("user: hi")  # a short one
    groups.append(2)
    return [tokenizer.encode(t) for t in texts], groups


@pytest.fixture(scope="module", params=["bos_pad", "no_bos_no_pad"])
def model_and_tokenizer(request, tiny_model_dir, tiny_model_no_bos_dir):
    torch.manual_seed(0)
    folder = tiny_model_dir if request.param == "bos_pad" else tiny_model_no_bos_dir
    return load_model_and_tokenizer(folder)


def test_batched_greedy_equals_one_at_a_time(model_and_tokenizer):
    model, tok = model_and_tokenizer
    prompts, groups = trajectory_prompts(tok)
    stop = stop_token_ids(tok, model)
    config = DecodingConfig(max_new_tokens=6)
    reference = generate_one_by_one(model, prompts, stop_ids=stop, pad_id=tok.pad_token_id, config=config)
    for batch_size, share_prefix in ((3, True), (16, True), (16, False)):
        out = generate(
            model, prompts, stop_ids=stop, pad_id=tok.pad_token_id, config=config,
            batch_size=batch_size, groups=groups, share_prefix=share_prefix,
        )  # fmt: skip
        assert out == reference


def test_tokenizer_without_pad_gets_the_same_pad_as_in_training(tiny_model_no_bos_dir):
    _, tok = load_model_and_tokenizer(tiny_model_no_bos_dir)
    assert tok.bos_token_id is None
    assert tok.pad_token_id == tok.unk_token_id  # unk first, as glpft.data.ensure_pad_token
    assert tok.encode("user: hi")[0] != tok.eos_token_id  # no BOS added


def test_rows_stop_at_their_stop_token_and_leave_the_batch(model_and_tokenizer):
    model, tok = model_and_tokenizer
    prompts, groups = trajectory_prompts(tok)
    config = DecodingConfig(max_new_tokens=8)
    free = generate(model, prompts, stop_ids=[-1], pad_id=tok.pad_token_id, config=config, groups=groups)

    # a stop token that rows emit at different steps (or never): rows finish at different times
    def first(f, t):
        return f.index(t) if t in f else None

    candidates = [t for f in free for t in f if len({first(f2, t) for f2 in free}) > 1]
    assert candidates, "tiny model produced identical rows"
    stop = candidates[0]
    out = generate(
        model, prompts, stop_ids=[stop], pad_id=tok.pad_token_id, config=config, batch_size=4, groups=groups
    )
    for full, cut in zip(free, out):
        expected = full[: full.index(stop)] if stop in full else full
        assert cut == expected


def test_sampling_is_seeded_per_sample_not_per_batch(model_and_tokenizer):
    model, tok = model_and_tokenizer
    prompts, groups = trajectory_prompts(tok)
    config = DecodingConfig(max_new_tokens=5, do_sample=True, top_k=50, top_p=0.95, seed=1)
    seeds = list(range(100, 100 + len(prompts)))
    a = generate(
        model, prompts, stop_ids=[-1], pad_id=tok.pad_token_id, config=config, batch_size=2, seeds=seeds
    )
    b = generate(
        model, prompts, stop_ids=[-1], pad_id=tok.pad_token_id, config=config, batch_size=8, seeds=seeds
    )
    c = generate(
        model, prompts, stop_ids=[-1], pad_id=tok.pad_token_id, config=config, batch_size=8,
        seeds=[s + 1 for s in seeds],
    )  # fmt: skip
    assert a == b
    assert a != c


def test_paper_decoding_reads_the_checkpoint_generation_config(tiny_model_dir):
    model, _ = load_model_and_tokenizer(tiny_model_dir)
    model.generation_config.top_p = 0.9
    config = DecodingConfig.paper(model, seed=3)
    assert config.do_sample and config.max_new_tokens == 512 and config.top_p == 0.9 and config.seed == 3


def test_batches_are_length_sorted_with_rows_in_trajectory_order():
    lengths = [5, 50, 6, 7, 40, 1]
    groups = ["a", "b", "a", "a", "b", "c"]
    assert plan_batches(lengths, groups, 4) == [[1, 4, 2, 3], [0, 5]]
    assert plan_batches(lengths, groups, 2, window=1) == [[1, 4], [2, 3], [0, 5]]
    assert plan_batches(lengths, None, 2) == [[1, 4], [3, 2], [0, 5]]
    assert sorted(i for b in plan_batches(lengths, groups, 3) for i in b) == list(range(6))

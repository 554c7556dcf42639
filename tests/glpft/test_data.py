"""GLPFT data pipeline: reading role files, tokenisation + loss masking (DESIGN §3.5), batching, packing."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from glpft.data import (
    IGNORE_INDEX,
    DataError,
    GLPFTCollator,
    PackedDataset,
    RoleDataset,
    SampleEncoder,
    ensure_pad_token,
    expand_data_paths,
    load_role_data,
    pack_lengths,
    special_prefix_ids,
)
from glpft.prompts import TRAIN_PREFIX

ROLES = ("backbone", "planner", "caller", "summarizer")


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tok_nobos(tiny_model_no_bos_dir):
    t = AutoTokenizer.from_pretrained(tiny_model_no_bos_dir)
    ensure_pad_token(t)
    return t


def reference_rows(reference_dir, role: str, n: int = 4) -> list[dict]:
    path = reference_dir / "alpha_umi" / "train-example" / f"train_{role}.json"
    return json.loads(path.read_text())[:n]


def test_bos_prefix_is_probed_not_assumed(tok, tok_nobos):
    assert special_prefix_ids(tok) == [tok.bos_token_id]
    assert special_prefix_ids(tok_nobos) == []


def test_missing_pad_token_falls_back_to_unk_with_a_note(tiny_model_no_bos_dir):
    t = AutoTokenizer.from_pretrained(tiny_model_no_bos_dir)
    assert t.pad_token_id is None
    note = ensure_pad_token(t)
    assert "unk" in note and t.pad_token_id == t.unk_token_id
    assert ensure_pad_token(t) is None


def test_eos_text_in_history_encodes_to_the_eos_token(tok):
    ids = tok("user: hi</s>assistant: ok", add_special_tokens=False)["input_ids"]
    assert tok.eos_token_id in ids


@pytest.mark.parametrize("role", ROLES)
def test_labels_cover_exactly_target_plus_eos_on_reference_rows(reference_dir, tok, role):
    enc = SampleEncoder(tok, max_len=100_000)
    for row in reference_rows(reference_dir, role):
        ids, labels = enc.encode(row)
        prompt = [tok.bos_token_id] + tok(TRAIN_PREFIX + row["input"], add_special_tokens=False)["input_ids"]
        target = tok(row["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert ids == prompt + target
        assert labels == [IGNORE_INDEX] * len(prompt) + target
        assert ids.count(tok.bos_token_id) == 1  # no second BOS before the target
        assert tok.decode([x for x in labels if x != IGNORE_INDEX], skip_special_tokens=True) == row["target"]


@pytest.mark.parametrize("role", ROLES)
def test_over_long_samples_keep_their_last_tokens(reference_dir, tok, role):
    full = SampleEncoder(tok, max_len=100_000)
    short = SampleEncoder(tok, max_len=128)
    for row in reference_rows(reference_dir, role):
        ids, labels = full.encode(row)
        cut_ids, cut_labels = short.encode(row)
        assert len(ids) > 128
        assert cut_ids == ids[-128:] and cut_labels == labels[-128:]
        assert cut_ids[-1] == tok.eos_token_id


def test_tokenizer_without_bos_gets_no_first_token_stripped(tok_nobos):
    enc = SampleEncoder(tok_nobos, max_len=512)
    ids, labels = enc.encode({"input": "user: hi", "target": "Action: x"})
    target = tok_nobos("Action: x", add_special_tokens=False)["input_ids"]
    assert ids[: len(ids) - len(target) - 1] == tok_nobos(TRAIN_PREFIX + "user: hi")["input_ids"]
    assert [x for x in labels if x != IGNORE_INDEX] == target + [tok_nobos.eos_token_id]


def write_json(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))


def test_reads_comma_separated_files_and_nested_folders_of_json_and_jsonl(tmp_path):
    rows = [{"tools": [], "history": [], "input": f"q{i}", "target": f"a{i}"} for i in range(50)]
    write_json(tmp_path / "a.json", rows)
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:10]) + "\n\n")
    (tmp_path / "dir" / "notes.txt").write_text("ignored")
    files = expand_data_paths(f"{tmp_path / 'a.json'},{tmp_path / 'dir'}")
    assert [f.name for f in files] == ["a.json", "b.jsonl"]
    train, dev = load_role_data(f"{tmp_path / 'a.json'},{tmp_path / 'dir'}", eval_ratio=0.02, seed=1)
    assert len(train) + len(dev) == 60 and len(dev) == 2  # paper parity: int(n * 0.98) kept per file
    assert load_role_data(str(tmp_path / "a.json"), seed=1) == load_role_data(
        str(tmp_path / "a.json"), seed=1
    )
    train, dev = load_role_data(str(tmp_path / "a.json"), max_num_sample_per_data=7, eval_ratio=0)
    assert (len(train), len(dev)) == (7, 0)
    train, _ = load_role_data(str(tmp_path / "a.json"), max_num_sample_ratio=0.5, eval_ratio=0)
    assert len(train) == 25


def test_bad_data_gives_one_line_errors_naming_file_and_field(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        expand_data_paths(str(tmp_path / "missing.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .json"):
        expand_data_paths(str(tmp_path / "empty"))
    write_json(tmp_path / "bad.json", [{"input": "x"}])
    with pytest.raises(DataError, match=r"bad.json\[0\]: field 'target'"):
        load_role_data(str(tmp_path / "bad.json"))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        load_role_data(str(tmp_path / "broken.json"))
    # JSON may escape a lone surrogate; the tokenizer used to fail on it mid-run, naming nothing
    (tmp_path / "surrogate.jsonl").write_text(
        '{"input": "x", "target": "y"}\n{"input": "a \\ud800", "target": "y"}\n'
    )
    with pytest.raises(DataError, match=r"surrogate.jsonl:2: field 'input' is not valid text"):
        load_role_data(str(tmp_path / "surrogate.jsonl"))
    write_json(tmp_path / "rows.json", [{"input": "x", "target": "y"}, ["not", "an", "object"]])
    with pytest.raises(DataError, match=r"rows.json\[1\]: a role sample must be a JSON object, got list"):
        load_role_data(str(tmp_path / "rows.json"))


def test_pack_lengths_fills_rows_without_overflow_and_keeps_every_sample():
    lengths = [100, 30, 250, 7, 64, 64, 128, 1, 256, 90]
    rows = pack_lengths(lengths, 256)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 256 for r in rows)
    assert len(rows) == 4  # 990 tokens: 4 rows is optimal here


def test_collator_pads_dynamic_batches_to_the_longest_and_original_mode_to_max():
    batch = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    out = GLPFTCollator(pad_token_id=0, mode="dynamic", max_len=16)(batch)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    # right padding under a causal mask needs no attention_mask (plain causal kernel); the loss
    # equality with the masked original recipe is checked in test_packed_loss_equals_unpacked_loss
    assert "attention_mask" not in out
    assert GLPFTCollator(0, "dynamic", 16, pad_to_multiple_of=8)(batch)["input_ids"].shape == (2, 8)
    original = GLPFTCollator(0, "max_length", 16)(batch)
    assert original["input_ids"].shape == (2, 16)
    assert original["attention_mask"][1].tolist() == [1] + [0] * 15


def test_packed_rows_restart_positions_and_never_predict_across_samples():
    row = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    out = GLPFTCollator(pad_token_id=0, mode="packed", max_len=16)([row, row[:1]])
    assert out["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 0, 1]]
    assert out["labels"].tolist() == [[-100, 6, 7, -100, 9], [-100, 6, 7, -100, -100]]
    flat = GLPFTCollator(pad_token_id=0, mode="packed", max_len=16, flatten=True)([row, row[:1]])
    assert flat["input_ids"].tolist() == [[5, 6, 7, 8, 9, 5, 6, 7]]
    assert flat["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]


def synthetic_rows(n: int) -> list[dict]:
    """Role-shaped samples of varied lengths (prompt-only long tails and target-only truncation)."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "input": "user: What is the weather in Paris?</s>" * (1 + i % 4) + " assistant: ",
                "target": "I should call the weather api. Next: caller." * (1 + i % 3),
            }
        )
    return rows


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_unpacked_loss(tiny_model_dir, tok, attn):
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation=attn, dtype=torch.float32
    )
    model.eval()
    model.config.use_cache = False  # as in training: packed masks are built only without a KV cache
    ds = RoleDataset(synthetic_rows(9), SampleEncoder(tok, max_len=64))
    assert any(n == 64 for n in ds.lengths)  # some samples are truncated
    packed = PackedDataset(ds, max_len=160)
    assert len(packed) < len(ds)
    dynamic = GLPFTCollator(tok.pad_token_id, "dynamic", 64)([ds[i] for i in range(len(ds))])
    original = GLPFTCollator(tok.pad_token_id, "max_length", 64)([ds[i] for i in range(len(ds))])
    rows = GLPFTCollator(tok.pad_token_id, "packed", 160)([packed[i] for i in range(len(packed))])
    with torch.no_grad():
        loss_dynamic = model(**dynamic).loss
        loss_original = model(**original).loss
        loss_packed = model(**rows).loss
    torch.testing.assert_close(loss_packed, loss_dynamic, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss_original, loss_dynamic, atol=1e-5, rtol=1e-5)


def test_lazy_dataset_matches_eager_items_and_estimates_lengths(tok):
    rows = synthetic_rows(12)
    eager = RoleDataset(rows, SampleEncoder(tok, max_len=64))
    lazy = RoleDataset(rows, SampleEncoder(tok, max_len=64), lazy=True)
    for i in range(12):
        assert lazy[i]["input_ids"].tolist() == eager[i]["input_ids"].tolist()
        assert lazy[i]["labels"].tolist() == eager[i]["labels"].tolist()
        assert eager[i]["labels"].tolist() == SampleEncoder(tok, max_len=64).encode(rows[i])[1]
    assert all(abs(a - b) <= max(8, b // 4) for a, b in zip(lazy.lengths, eager.lengths))
    with pytest.raises(DataError, match="packing needs exact lengths"):
        PackedDataset(lazy, 64)

"""Model folders (glpft.modeling): a damaged file is named in one line, exit status 2, by every command
that reads one (train, infer, merge-lora), and make-tiny-model refuses an --out that is a file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glpft import infer, lora, tiny_model, train
from glpft.modeling import ModelFolderError, check_model_files


def halve(data: bytes) -> bytes:
    return data[: len(data) // 2]


#: id → (file, how it is damaged)
DAMAGE = {
    "config-truncated": ("config.json", halve),
    "config-not-json": ("config.json", lambda _: b"<html>Bad Gateway</html>"),
    "weights-truncated": ("model.safetensors", lambda b: b[:-100]),
    "weights-header-cut": ("model.safetensors", lambda b: b[:1000]),
    "weights-garbage": ("model.safetensors", lambda b: b"\xff" * 64),
    "weights-empty": ("model.safetensors", lambda _: b""),
    "tokenizer-truncated": ("tokenizer.json", halve),
}


def damaged_copy(model_dir: Path, folder: Path, name: str, how) -> Path:
    shutil.copytree(model_dir, folder)
    path = folder / name
    path.write_bytes(how(path.read_bytes()))
    return path


def one_line_error(capsys, prog: str, main, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"alpha-umi {prog}: error: ") and "\n" not in err, err
    return err


STAGE2 = [
    {
        "tools": [{"Name": "t", "function": "f", "input": {}}],
        "instruction": "q",
        "conversations": [
            {"from": "user", "value": "q"},
            {"from": "assistant", "value": "done. Next: conclusion."},
            {"from": "conclusion", "value": "a"},
        ],
    }
]


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_train_and_infer_name_the_damaged_file_of_a_model_folder(tiny_model_dir, tmp_path, capsys, damage):
    name, how = DAMAGE[damage]
    bad = damaged_copy(tiny_model_dir, tmp_path / "model", name, how)
    with pytest.raises(ModelFolderError, match=str(bad)):
        check_model_files(bad.parent)

    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"input": "user: hi", "target": "Next: caller."}] * 4))
    argv = [
        "--model_name_or_path",
        str(bad.parent),
        "--data_path",
        str(data),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert str(bad) in one_line_error(capsys, "train", train.main, argv + ["--report_to", "none"])
    assert not (tmp_path / "o").exists()

    test_file = tmp_path / "test.json"
    test_file.write_text(json.dumps(STAGE2))
    argv = [
        f"--backbone_model_name_or_path={bad.parent}",
        f"--data_path={test_file}",
        f"--output_dir={tmp_path / 'p'}",
    ]
    assert str(bad) in one_line_error(capsys, "infer", infer.main, argv)
    assert not (tmp_path / "p").exists()


def test_a_missing_shard_of_a_sharded_model_is_named(tiny_model_dir, tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match="shard model-00002-of-00002.safetensors is missing"):
        check_model_files(folder)


def adapter_folder(folder: Path, base: Path) -> Path:
    folder.mkdir()
    cfg = {"base_model_name_or_path": str(base), "peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    (folder / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return folder


def test_merge_lora_and_infer_name_a_damaged_adapter_file(tiny_model_dir, tmp_path, capsys):
    adapter = adapter_folder(tmp_path / "adapter", tiny_model_dir)
    cfg = adapter / "adapter_config.json"
    cfg.write_bytes(halve(cfg.read_bytes()))
    argv = ["--adapter", str(adapter), "--out", str(tmp_path / "merged")]
    assert str(cfg) in one_line_error(capsys, "merge-lora", lora.main, argv)
    test_file = tmp_path / "test.json"
    test_file.write_text(json.dumps(STAGE2))
    argv = [
        f"--backbone_model_name_or_path={adapter}",
        f"--data_path={test_file}",
        f"--output_dir={tmp_path / 'p'}",
    ]
    assert str(cfg) in one_line_error(capsys, "infer", infer.main, argv)

    weights = adapter_folder(tmp_path / "adapter2", tiny_model_dir) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-3])
    argv = ["--adapter", str(weights.parent), "--out", str(tmp_path / "merged")]
    assert str(weights) in one_line_error(capsys, "merge-lora", lora.main, argv)
    assert not (tmp_path / "merged").exists()


def test_make_tiny_model_refuses_an_out_that_is_a_file(tmp_path, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    err = one_line_error(capsys, "make-tiny-model", tiny_model.main, ["--out", str(existing)])
    assert f"--out {existing} is a file" in err and existing.read_text() == "keep me"
    bad_corpus = tmp_path / "corpus.json"
    bad_corpus.write_text('{"a": ')
    err = one_line_error(
        capsys,
        "make-tiny-model",
        tiny_model.main,
        ["--out", str(tmp_path / "m"), "--corpus", str(bad_corpus)],
    )
    assert str(bad_corpus) in err

"""LoRA through `alpha-umi train --use_lora`, adapter save/load, and `alpha-umi merge-lora`."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from glpft.lora import LoraArguments, is_adapter_dir, merge_lora, target_modules
from glpft.lora import main as merge_main
from glpft.train import main as train_main


def role_file(path, n=16):
    rows = [
        {"input": "user: weather in Paris?</s>" * (1 + i % 3), "target": "Next: caller."} for i in range(n)
    ]
    path.write_text(json.dumps(rows))
    return path


def test_target_modules_spec():
    assert target_modules("q_proj, v_proj") == ["q_proj", "v_proj"]
    assert target_modules("all-linear") == "all-linear"
    assert LoraArguments().use_lora is False  # the paper fine-tunes every weight


@pytest.mark.slow
def test_lora_adapter_trains_saves_loads_and_merges_to_the_same_model(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "adapter"
    argv = [
        "--model_name_or_path", str(tiny_model_dir), "--data_path", str(role_file(tmp_path / "d.json")),
        "--output_dir", str(out), "--use_lora", "True", "--lora_r", "4", "--lora_alpha", "8",
        "--lora_target_modules", "q_proj,v_proj", "--max_steps", "4", "--learning_rate", "1e-2",
        "--per_device_train_batch_size", "4", "--model_max_length", "64", "--logging_steps", "1",
        "--save_strategy", "no", "--report_to", "none", "--dataloader_pin_memory", "False",
    ]  # fmt: skip
    assert train_main(argv) == 0
    assert is_adapter_dir(out) and (out / "adapter_model.safetensors").is_file()
    assert (out / "loss_curve.png").is_file()
    AutoModelForCausalLM.from_pretrained(out)  # transformers' peft integration loads base + adapter

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out))
    ids = torch.tensor([[1, 5, 9, 13, 21, 34]])
    with torch.no_grad():
        base_logits, tuned_logits = base(ids).logits, tuned(ids).logits
    assert not torch.allclose(base_logits, tuned_logits)  # the adapter learned something

    merged_dir = merge_lora(out, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, tuned_logits, atol=1e-4, rtol=1e-4)

    # an unmerged adapter is refused as a stage-2 starting point, with the fix in the message
    capsys.readouterr()
    assert train_main(argv[:1] + [str(out)] + argv[2:]) == 2
    assert "merge-lora" in capsys.readouterr().err
    # the CLI refuses to overwrite a non-empty output folder
    with pytest.raises(SystemExit):
        merge_main(["--adapter", str(out), "--out", str(merged_dir)])
    assert merge_main(["--adapter", str(out), "--out", str(merged_dir), "--overwrite"]) == 0

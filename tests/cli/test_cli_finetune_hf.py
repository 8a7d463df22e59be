"""`tinylm finetune HF_DIR`: a local Hugging Face causal LM (Llama) and seq2seq model (T5), both tiny
and random, built here (no hub), fine-tuned through PEFT; what is saved loads in PEFT and gives
the validation loss the run reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from tinylm.checkpoint import save_checkpoint  # noqa: E402
from tinylm.cli.main import main  # noqa: E402
from tinylm.config import ModelConfig  # noqa: E402
from tinylm.finetune_hf import _Batches  # noqa: E402
from tinylm.interop.hf import export_hf  # noqa: E402
from tinylm.model import GPT  # noqa: E402
from tinylm.tokenizers import train_tokenizer  # noqa: E402

PAIRS = [{"input": f"suma {a} y {b}", "output": f"{a + b}"} for a in range(6) for b in range(6)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, save_tiny_t5) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    tok = train_tokenizer("char", [f"{p['input']}\n{p['output']}" for p in PAIRS])
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32, ffn="swiglu",
                      position="rope", norm="rmsnorm", bias=False)
    export_hf(save_checkpoint(root / "tiny", GPT(cfg), tok), root / "llama")
    save_tiny_t5(root / "llama", root / "t5", tok.vocab_size)
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return {"llama": root / "llama", "t5": root / "t5", "data": data}


def val_loss_in_peft(folder: Path, adapter: Path, seq2seq: bool) -> float:
    cls = transformers.AutoModelForSeq2SeqLM if seq2seq else transformers.AutoModelForCausalLM
    model = peft.PeftModel.from_pretrained(cls.from_pretrained(folder), adapter).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    held = _Batches(PAIRS[-1:], tok, seq2seq)
    with torch.no_grad():
        return model(**held.batch([0])).loss.item()


@pytest.mark.parametrize("kind,method,flags", [("llama", "lora", ["--rank", "4", "--targets", "q_proj,v_proj"]),
                                               ("t5", "lora", ["--rank", "4"]),
                                               ("t5", "prompt", ["--virtual-tokens", "8", "--prompt-init", "random", "--lr", "0.5"])])
def test_hf_folder_finetunes_through_peft(folders, tmp_path, capsys, kind, method, flags) -> None:
    out = tmp_path / "run"
    assert main(["finetune", str(folders[kind]), "--data", str(folders["data"]), "--out", str(out), "--max-steps", "30",
                 "--lr", "3e-2", "--batch-size", "8", "--eval-every", "0", "--quiet", "--method", method, *flags]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == ("seq2seq" if kind == "t5" else "causal")
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-5:]) < sum(losses[:5])  # it learned something
    assert summary["trainable_parameters"] < summary["parameters"] / 5
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert val_loss_in_peft(folders[kind], out / "adapter", kind == "t5") == pytest.approx(summary["val_loss"], abs=1e-5)


def test_hf_bad_input_is_one_line(folders, tmp_path, capsys) -> None:
    for flags, message in ((["--method", "adapter"], "not in PEFT"),
                           (["--method", "lora", "--targets", "nothing_here"], "lora on"),
                           (["--method", "lora", "--patience", "3"], "not used for a Hugging Face model")):
        out = tmp_path / "bad"
        assert main(["finetune", str(folders["llama"]), *flags, "--data", str(folders["data"]), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()


def test_hf_finetune_resumes_where_it_was_interrupted(folders, tmp_path, monkeypatch) -> None:
    """A run killed after its step-5 save and resumed ends with the adapter of an uninterrupted run
    (optimizer moments, data order and LoRA dropout's RNG all come back)."""
    from safetensors.torch import load_file

    import tinylm.finetune_hf as fh

    flags = ["--method", "lora", "--rank", "4", "--lora-dropout", "0.1", "--data", str(folders["data"]),
             "--max-steps", "10", "--lr", "3e-2", "--batch-size", "4", "--eval-every", "5", "--quiet"]
    assert main(["finetune", str(folders["t5"]), *flags, "--out", str(tmp_path / "whole")]) == 0

    real, calls = fh._Batches.batch, {"n": 0}

    def dies_at_step_7(self, indices):
        if len(indices) == 4:  # training batches (validation batches hold the 1 held-out pair)
            calls["n"] += 1
            if calls["n"] == 7:
                raise KeyboardInterrupt
        return real(self, indices)

    monkeypatch.setattr(fh._Batches, "batch", dies_at_step_7)
    assert main(["finetune", str(folders["t5"]), *flags, "--out", str(tmp_path / "cut")]) != 0  # "interrupted"
    monkeypatch.setattr(fh._Batches, "batch", real)
    assert not (tmp_path / "cut" / "adapter").exists()
    assert main(["finetune", "--resume", "--out", str(tmp_path / "cut"), "--quiet"]) == 0
    whole = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    cut = load_file(str(tmp_path / "cut" / "adapter" / "adapter_model.safetensors"))
    assert whole.keys() == cut.keys()
    for name in whole:
        torch.testing.assert_close(cut[name], whole[name], rtol=0, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))  # steps 6 and 7 are not run twice: 6 is logged once, after the resume

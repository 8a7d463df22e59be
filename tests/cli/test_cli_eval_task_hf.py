"""`tinylm eval-task` on a Hugging Face seq2seq model: a tiny random T5 built here (no hub),
LoRA-fine-tuned by `tinylm finetune` through PEFT, evaluated from its adapter folder on a
CODE-2 split read from --data. Reference: the same PEFT model, loaded by PEFT itself, decoding
each line alone (no batch, no padding) with transformers' greedy generate."""

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
from tinylm.interop.hf import export_hf  # noqa: E402
from tinylm.model import GPT  # noqa: E402
from tinylm.tokenizers import train_tokenizer  # noqa: E402

LINES = [("Sustrae rC de rB y pon el resultado en rC", "SUBS rC,rB,rC"),
         ("CALCULA LA DIFERENCIA DE RA Y EL REGISTRO A EN RC", "SUBS rC,rA,rA"),
         ("OBTÉN LA SUMA DE RB Y EL REGISTRO RA Y ALMACÉNALA EN R1", "ADDS r1,rB,rA")]
BLOCKS = [{"input": "\n".join(i for i, _ in LINES[:2]), "output": "\n".join(o for _, o in LINES[:2])},
          {"input": LINES[2][0], "output": LINES[2][1]},
          {"input": "\n".join(i for i, _ in LINES), "output": "\n".join(o for _, o in LINES)}]
MAX_NEW = 12


@pytest.fixture(scope="module")
def run(tmp_path_factory, save_tiny_t5) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-eval")
    torch.manual_seed(0)
    tok = train_tokenizer("char", [f"{i}\n{o}" for i, o in LINES])
    cfg = ModelConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)
    export_hf(save_checkpoint(root / "tiny", GPT(cfg), tok), root / "gpt")  # for its HF tokenizer files
    save_tiny_t5(root / "gpt", root / "t5", tok.vocab_size)
    data = root / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in LINES * 4))
    (data / "test.jsonl").write_text("".join(json.dumps(b) + "\n" for b in BLOCKS))
    assert main(["finetune", str(root / "t5"), "--method", "lora", "--rank", "4", "--data", str(data / "train.jsonl"),
                 "--out", str(root / "ft"), "--max-steps", "5", "--lr", "3e-2", "--batch-size", "4", "--eval-every", "0",
                 "--quiet"]) == 0
    return {"t5": root / "t5", "gpt": root / "gpt", "adapter": root / "ft" / "adapter", "data": data}


def test_eval_task_scores_a_peft_t5_as_peft_decodes_it_alone(run, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    assert main(["eval-task", str(run["adapter"]), "--task", "code2-thesis", "--data", str(run["data"]), "--split", "test",
                 "--max-new-tokens", str(MAX_NEW), "--latency-examples", "0", "--batch-size", "8", "--out", str(out),
                 "--quiet"]) == 0
    assert "Hugging Face seq2seq" in capsys.readouterr().out
    predictions = [json.loads(line)["prediction"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    assert report["examples"] == len(BLOCKS) and report["settings"]["constrained"] is False

    model = peft.PeftModel.from_pretrained(transformers.AutoModelForSeq2SeqLM.from_pretrained(run["t5"]),
                                           run["adapter"]).eval()
    tok = transformers.AutoTokenizer.from_pretrained(run["t5"])
    expected = []
    for block in BLOCKS:
        answers = []
        for line in block["input"].split("\n"):
            ids = torch.tensor([tok(line)["input_ids"]])
            with torch.no_grad():
                row = model.generate(input_ids=ids, max_new_tokens=MAX_NEW, do_sample=False)[0].tolist()[1:]
            answers.append(tok.decode(row, skip_special_tokens=True))
        expected.append("\n".join(answers))
    assert predictions == expected
    assert any(p.strip() for p in predictions)  # something was decoded (a test of empty strings proves little)


def test_hf_eval_bad_input_is_one_line(run, tmp_path, capsys) -> None:
    for folder, flags, message in ((run["t5"], [], "--task"),
                                   (run["gpt"], ["--task", "code2-thesis"], "causal language model")):
        assert main(["eval-task", str(folder), *flags, "--data", str(run["data"]), "--out", str(tmp_path / "e")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err

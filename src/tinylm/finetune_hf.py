"""Fine-tuning a local Hugging Face model folder through PEFT: `tinylm finetune HF_DIR ...`.

    tinylm finetune ./t5-small --method lora --rank 16 --alpha 32 --data train.jsonl --out runs/t5-lora
    tinylm finetune ./hf-llama --method prompt --virtual-tokens 20 --data train.jsonl --out runs/pt

The same flags and data as for a tinylm checkpoint: pairs ({"input", "output"} JSONL). A
causal LM (GPT-2, Llama, ...: AutoModelForCausalLM) reads `input` + newline and is scored on
`output` + eos; a seq2seq model (T5: AutoModelForSeq2SeqLM, `is_encoder_decoder`) encodes
`input` and decodes `output`. Methods: lora (PEFT's LoraConfig; `--targets` a comma-separated
list of module names, default PEFT's for the architecture, e.g. q,v for T5), prompt
(PromptTuningConfig; `--prompt-init vocab` = PEFT's SAMPLE_VOCAB), full (every weight, minus
`--freeze`). Bottleneck adapters are not in PEFT (the UGR thesis hit the same wall): refused.

The loop is a short AdamW loop with tinylm's lr schedule (training/schedule.py), step and
time budgets, periodic validation loss, metrics.jsonl. `tinylm finetune --resume --out DIR`
continues it: DIR/last/ holds the trainable tensors and the optimizer and RNG state
(training/state.py's format), rewritten at each evaluation and at the end; DIR/data/ the pairs;
DIR/hf_finetune.json the base folder, method and settings.
The run folder: adapter/ (PEFT's save_pretrained: adapter_config.json +
adapter_model.safetensors, what PeftModel.from_pretrained reads) or, for full, model/ (the
model's save_pretrained with its tokenizer); merged/ with --merge (LoRA folded in).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tinylm.atomic_files import atomic_folder, atomic_write, write_json
from tinylm.errors import TinyLMError


def is_hf_folder(path: str | Path) -> bool:
    """A Hugging Face model folder: its config.json names a model_type (a tinylm checkpoint's does not)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return "model_type" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


@dataclass
class HFTrain:
    max_steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 10
    decay: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batches: int = 4
    time_budget_s: float = 0.0
    seed: int = 1337


def _peft_config(method: str, seq2seq: bool, settings: dict[str, Any]):
    import peft

    task = peft.TaskType.SEQ_2_SEQ_LM if seq2seq else peft.TaskType.CAUSAL_LM
    if method == "lora":
        targets = settings.get("targets")
        return peft.LoraConfig(task_type=task, r=settings["rank"], lora_alpha=settings["alpha"],
                               lora_dropout=settings["lora_dropout"],
                               target_modules=[t.strip() for t in targets.split(",")] if targets else None)
    init = peft.PromptTuningInit.SAMPLE_VOCAB if settings["prompt_init"] == "vocab" else peft.PromptTuningInit.RANDOM
    return peft.PromptTuningConfig(task_type=task, num_virtual_tokens=settings["virtual_tokens"], prompt_tuning_init=init)


class _Batches:
    """Pairs encoded for the model kind; right-padded batches with -100 labels on padding (and, for
    a causal LM, on the prompt)."""

    def __init__(self, pairs: list[dict[str, Any]], tokenizer, seq2seq: bool) -> None:
        self.seq2seq, self.pad = seq2seq, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        eos = tokenizer.eos_token_id
        self.rows: list[tuple[list[int], list[int]]] = []
        for p in pairs:
            if seq2seq:
                self.rows.append((tokenizer(p["input"])["input_ids"], tokenizer(p["output"])["input_ids"]))
            else:
                prompt = tokenizer(p["input"] + "\n")["input_ids"]
                answer = tokenizer(p["output"], add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
                self.rows.append((prompt + answer, [-100] * len(prompt) + answer))

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = [self.rows[i] for i in indices]

        def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
            width = max(map(len, seqs))
            return torch.tensor([s + [value] * (width - len(s)) for s in seqs])

        ids = pad([r[0] for r in rows], self.pad)
        mask = pad([[1] * len(r[0]) for r in rows], 0)
        return {"input_ids": ids, "attention_mask": mask, "labels": pad([r[1] for r in rows], -100)}


HF_RUN_FILE = "hf_finetune.json"  # what --resume needs: the base folder, method, settings, training settings
STATE_FOLDER = "last"  # trainable tensors + optimizer and RNG state, rewritten at each evaluation and at the end
TRAINABLE_FILE = "trainable.safetensors"


def _load(folder: Path, method: str, settings: dict[str, Any], seed: int):
    """(model with the method applied, tokenizer, seq2seq) for a base folder."""
    from tinylm.interop.hf import require_transformers
    from tinylm.transforms.freeze import parameter_matches

    tf = require_transformers()
    import peft

    if method == "adapter":
        raise TinyLMError("bottleneck adapters are not in PEFT (the UGR thesis dropped them for the same reason); "
                          "use --method lora or prompt on a Hugging Face model")
    if settings.get("freeze") and method != "full":
        raise TinyLMError(f"--freeze goes with --method full ({method} already freezes everything but its own tensors)")
    tf.utils.logging.disable_progress_bar()  # errors stay one line on stderr
    try:
        config = tf.AutoConfig.from_pretrained(folder)
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        cls = tf.AutoModelForSeq2SeqLM if seq2seq else tf.AutoModelForCausalLM
        model = cls.from_pretrained(folder, dtype=torch.float32)
        tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as e:
        raise TinyLMError(f"cannot load the Hugging Face model in {folder}: {str(e).strip().splitlines()[0]}") from None
    torch.manual_seed(seed)  # the method's fresh tensors (LoRA's A, prompt vectors)
    if method == "full":
        if settings.get("freeze"):
            frozen = [n for n, p in model.named_parameters() if parameter_matches(n, settings["freeze"])]
            if not frozen:
                raise TinyLMError(f"--freeze {settings['freeze']!r} matches no parameter of {folder}")
            for n, p in model.named_parameters():
                p.requires_grad_(n not in frozen)
    else:
        try:
            model = peft.get_peft_model(model, _peft_config(method, seq2seq, settings))
        except (ValueError, KeyError) as e:  # e.g. target modules not found
            raise TinyLMError(f"{method} on {folder}: {str(e).strip().splitlines()[0]}") from None
    return model, tokenizer, seq2seq


def finetune_hf(folder: str | Path, method: str, settings: dict[str, Any], train: list[dict[str, Any]],
                val: list[dict[str, Any]], out: str | Path, cfg: HFTrain, *, merge: bool = False,
                quiet: bool = False) -> dict[str, Any]:
    folder, out = Path(folder), Path(out)
    model, tokenizer, seq2seq = _load(folder, method, settings, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    # The data is copied into the run, so --resume needs nothing but the run folder (and the base).
    for name, rows in (("train.jsonl", train), ("val.jsonl", val)):
        with atomic_write(out / "data" / name) as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_json(out / HF_RUN_FILE, {"base": str(folder), "method": method, "settings": settings, "merge": merge,
                                   "train": dataclasses.asdict(cfg)})
    return _fit(model, tokenizer, seq2seq, folder, method, train, val, out, cfg, merge=merge)


def is_hf_run(out: str | Path) -> bool:
    return (Path(out) / HF_RUN_FILE).is_file()


def resume_hf(out: str | Path, overrides: dict[str, Any], *, merge: bool = False) -> dict[str, Any]:
    """Continue the run in `out` from its last state (`overrides`: HFTrain fields, e.g. a larger max_steps)."""
    from safetensors.torch import load_file

    from tinylm.atomic_files import read_json
    from tinylm.data import read_pairs
    from tinylm.training.state import read_train_state

    out = Path(out)
    info = read_json(out / HF_RUN_FILE)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(HFTrain)})
    if unknown:
        raise TinyLMError(f"not used for a Hugging Face model: {', '.join('--' + k.replace('_', '-') for k in unknown)}")
    cfg = HFTrain(**{**info["train"], **overrides})
    folder = Path(info["base"])
    model, tokenizer, seq2seq = _load(folder, info["method"], info["settings"], cfg.seed)
    state = out / STATE_FOLDER
    meta, tensors = read_train_state(state)  # a clear line when the run never reached its first save
    saved = load_file(str(state / TRAINABLE_FILE))
    live = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(saved) != set(live):
        raise TinyLMError(f"cannot resume: the trainable tensors in {state} do not match {folder} with {info['method']}")
    with torch.no_grad():
        for name, p in live.items():
            p.copy_(saved[name])
    write_json(out / HF_RUN_FILE, {**info, "train": dataclasses.asdict(cfg), "merge": merge or info.get("merge", False)})
    return _fit(model, tokenizer, seq2seq, folder, info["method"], read_pairs(out / "data" / "train.jsonl"),
                read_pairs(out / "data" / "val.jsonl"), out, cfg, merge=merge or info.get("merge", False),
                resume=(meta, tensors))


def _fit(model, tokenizer, seq2seq: bool, folder: Path, method: str, train: list[dict[str, Any]],
         val: list[dict[str, Any]], out: Path, cfg: HFTrain, *, merge: bool,
         resume: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
    from safetensors.torch import save_file

    from tinylm.training.schedule import lr_at
    from tinylm.training.state import Progress, restore_train_state, write_train_state

    params = [p for p in model.parameters() if p.requires_grad]
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    trainable, total = sum(p.numel() for p in params), sum(p.numel() for p in model.parameters())
    data, held = _Batches(train, tokenizer, seq2seq), _Batches(val, tokenizer, seq2seq)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    progress = Progress()
    if resume is not None:
        progress = restore_train_state(*resume, optimizer=optimizer, data_generator=generator)
        # Rows logged after the last save are run again: keep one row a step.
        rows = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if (out / "metrics.jsonl").is_file() else []
        with atomic_write(out / "metrics.jsonl") as f:
            f.writelines(r + "\n" for r in rows if json.loads(r)["step"] <= progress.step)
    log = (out / "metrics.jsonl").open("a" if resume is not None else "w", encoding="utf-8")

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [model(**held.batch(list(range(i, min(i + cfg.batch_size, len(held.rows)))))).loss.item()
                      for i in range(0, min(len(held.rows), cfg.eval_batches * cfg.batch_size), cfg.batch_size)]
        model.train()
        return sum(losses) / len(losses)

    def save_state(step: int, elapsed: float) -> None:
        with atomic_folder(out / STATE_FOLDER) as tmp:
            save_file({n: p.detach().contiguous() for n, p in named.items()}, str(tmp / TRAINABLE_FILE))
            write_train_state(tmp, progress=Progress(step=step, elapsed_s=elapsed), train_config=dataclasses.asdict(cfg),
                              optimizer=optimizer, data_generator=generator)

    start, step, first = time.perf_counter(), progress.step, val_loss()
    before = progress.elapsed_s  # training time of the earlier sessions (the budget counts them)
    model.train()
    stop = "max_steps"
    while step < cfg.max_steps:
        if cfg.time_budget_s and before + time.perf_counter() - start >= cfg.time_budget_s:
            stop = "time_budget"
            break
        lr = lr_at(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
                   decay=cfg.decay)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data.batch(torch.randint(len(data.rows), (cfg.batch_size,), generator=generator).tolist())
        loss = model(**batch).loss
        if not math.isfinite(loss.item()):
            raise TinyLMError(f"training diverged: loss is {loss.item()} at step {step + 1}; try a lower lr")
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        row: dict[str, Any] = {"step": step, "loss": loss.item(), "lr": lr}
        if cfg.eval_every and step % cfg.eval_every == 0:
            row["val_loss"] = val_loss()
            save_state(step, before + time.perf_counter() - start)
        log.write(json.dumps(row) + "\n")
        log.flush()
    log.close()
    save_state(step, before + time.perf_counter() - start)
    last = val_loss()
    model.eval()
    saved = out / ("model" if method == "full" else "adapter")
    with atomic_folder(saved) as tmp:
        model.save_pretrained(tmp)
        if method == "full":
            tokenizer.save_pretrained(tmp)
    if merge and method == "lora":
        with atomic_folder(out / "merged") as tmp:
            model.merge_and_unload().save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    summary = {"base": str(folder), "kind": "seq2seq" if seq2seq else "causal", "method": method, "steps": step,
               "stop_reason": stop, "train_s": round(before + time.perf_counter() - start, 2),
               "trainable_parameters": trainable, "parameters": total, "val_loss_before": first, "val_loss": last,
               "saved": str(saved)}
    write_json(out / "summary.json", summary)
    return summary

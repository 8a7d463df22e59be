"""Where training metrics go: a JSONL file, TensorBoard, a loss-curve PNG and the terminal.

    out_dir/metrics.jsonl   one JSON object per line: training rows
                            {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed"}
                            and evaluation rows {"step", "val_loss", "val_ppl"}
    out_dir/tensorboard/    the same numbers as TensorBoard scalars (train/*, val/*)
    out_dir/loss.png        train and val loss against the step, drawn at the end of fit()

The JSONL is the source of truth (the PNG is drawn from it). It is appended line by line
and flushed, so a killed run keeps every row it logged; on resume, rows past the resumed
step (logged after the last checkpoint, by the run that died) are cut away first, so the
file reads as one consistent run.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from tinylm.atomic_files import atomic_write

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
PLOT_FILE = "loss.png"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a torn last line (the process died mid-write) is skipped."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return []
    return rows


class MetricsLogger:
    """Appends rows to metrics.jsonl and, when available, TensorBoard."""

    def __init__(self, out_dir: Path, *, resume_step: int | None, tensorboard: bool = True, echo=None) -> None:
        self.path = out_dir / METRICS_FILE
        self.echo = echo  # a print-like function for non-TTY runs, or None
        out_dir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step] if resume_step is not None else []
        with atomic_write(self.path) as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self.file = open(self.path, "a", encoding="utf-8")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                print(f"note: TensorBoard logging skipped ({e})", file=sys.stderr)
            else:
                # purge_step hides events a dead run wrote after the checkpoint we resume from.
                purge = resume_step + 1 if resume_step is not None else None
                self.writer = SummaryWriter(str(out_dir / TENSORBOARD_DIR), purge_step=purge)

    def log(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.writer is not None:
            prefix = "val" if "val_loss" in row else "train"
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{key.removeprefix('val_')}", value, row["step"])
        if self.echo is not None:
            self.echo(format_row(row))

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


class NullLogger:
    """The logger of processes other than rank 0 in multi-process training: they write nothing."""

    def log(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def format_row(row: dict[str, Any]) -> str:
    if "val_loss" in row:
        return f"step {row['step']}: val loss {row['val_loss']:.4f}, val ppl {row['val_ppl']:.2f}"
    return (
        f"step {row['step']}: loss {row['loss']:.4f}, lr {row['lr']:.2e}, "
        f"{row['tokens_per_s']:.0f} tok/s, {row['elapsed']:.1f}s"
    )


def plot_loss_curve(rows: list[dict[str, Any]], path: Path) -> None:
    """Train loss (and val loss, if any) against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe in threads and on servers
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


class ProgressBar:
    """A tqdm bar (step counter, loss, lr, tok/s, ETA) when stderr is a terminal."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)

    def update(self, loss: float, lr: float, tokens_per_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}", refresh=False)
            self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

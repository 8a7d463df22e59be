"""The report stage: one Markdown file with tables and PNG plots of the runs it is given.

It looks through its inputs (files or stage folders) for what the toolkit writes:

    metrics.jsonl   a training run           -> loss curves (train and validation), final losses
    report.json     an eval-task report      -> headline metrics, accuracy by length
    bench.json      a `tinylm bench` result  -> its tables (speed), a plot of its first table
    tokenizer_stats.json  a tokenizer stage   -> kind and vocabulary size
    quantize.json   a `tinylm quantize` run  -> sizes and the perplexity check
    eval.json       a `tinylm eval` run      -> loss and perplexity

Plots are drawn with matplotlib's Agg backend without metadata dates, so the same figures
give the same bytes. The report is run as its own process by the runner
(`python -c ...report.main`), like every other stage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tinylm.atomic_files import atomic_write

_PNG_META = {"Software": None}  # no version string: the same figure gives the same bytes


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _find(inputs: list[tuple[str, Path]], filename: str) -> list[tuple[str, Path]]:
    """(label, file) for every `filename` in the inputs, labelled by input name (and sub-path)."""
    found = []
    for name, path in inputs:
        if path.is_file() and path.name == filename:
            found.append((name, path))
        elif path.is_dir():
            for f in sorted(path.rglob(filename)):
                sub = f.parent.relative_to(path).as_posix()
                found.append((name if sub == "." else f"{name}/{sub}", f))
    return found


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)[:60]
    return str(v)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return lines + [""]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, metadata=_PNG_META)


def _loss_section(runs: list[tuple[str, Path]]) -> list[str]:
    from tinylm.training.metrics_log import read_metrics

    if not runs:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    summary = []
    for label, path in runs:
        rows = read_metrics(path)
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        if train:
            ax.plot(*zip(*train), label=f"{label} train")
        if val:
            ax.plot(*zip(*val), marker="o", label=f"{label} val")
        summary.append({"run": label, "steps": max((r["step"] for r in rows), default=0),
                        "final train loss": train[-1][1] if train else "",
                        "best val loss": min(v for _, v in val) if val else ""})
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, Path("loss.png"))
    plt.close(fig)
    return ["## Training", "", "![loss curves](loss.png)", "", *_table(summary)]


def _eval_section(reports: list[tuple[str, Path]]) -> list[str]:
    loaded = [(label, r) for label, path in reports if isinstance(r := _load(path), dict)]
    if not loaded:
        return []
    lines = ["## Evaluation", ""]
    summary = []
    for label, r in loaded:
        # eval-task's headline figures: the task-generic metrics and the task's own scores.
        figures = {k: v for part in ("metrics", "scores") for k, v in (r.get(part) or {}).items()
                   if isinstance(v, (int, float, str))}
        summary.append({"run": label, "examples": r.get("examples", ""), **figures})
    lines += _table(summary)
    with_lengths = [(label, r["by_length"]) for label, r in loaded if r.get("by_length")]
    if with_lengths:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, rows in with_lengths:
            ax.plot([row["length"] for row in rows], [row["exact_match"] for row in rows], marker="o", label=label)
        ax.set_xlabel("example length")
        ax.set_ylabel("exact match")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        _save(fig, Path("accuracy_by_length.png"))
        plt.close(fig)
        lines += ["![accuracy by length](accuracy_by_length.png)", ""]
    return lines


def _rows(value: Any) -> list[dict[str, Any]] | None:
    """A benchmark's table: a list of row objects, or an object of named row objects
    (`{"fp32": {...}, "int8": {...}}` -> rows with a "name" column)."""
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return value
    if isinstance(value, dict) and value and all(isinstance(r, dict) for r in value.values()):
        return [{"name": k, **r} for k, r in value.items()]
    return None


def _bench_section(benches: list[tuple[str, Path]]) -> list[str]:
    lines: list[str] = []
    for i, (label, path) in enumerate(benches):
        b = _load(path)
        if not isinstance(b, dict):
            continue
        lines += [f"## Benchmark {b.get('benchmark', label)} ({label})", ""]
        scalars = {k: v for k, v in b.items() if isinstance(v, (int, float, str, bool)) and k != "benchmark"}
        if scalars:
            lines += _table([scalars])
        tables = [(k, rows) for k, v in b.items() if (rows := _rows(v))]
        for key, rows in tables:
            lines += [f"{key}:", "", *_table(rows)]
        if tables:
            key, rows = tables[0]
            x = next(iter(rows[0]))
            ys = [c for c in rows[0] if c != x and all(isinstance(r.get(c), (int, float)) and
                                                      not isinstance(r.get(c), bool) for r in rows)]
            # Speed columns share a scale; sizes or counts beside them would flatten the plot.
            from tinylm.pipeline.runner import is_timing_key

            ys = [c for c in ys if is_timing_key(c)] or ys
            if ys:
                plt = _plt()
                fig, ax = plt.subplots(figsize=(7, 4))
                for c in ys:
                    ax.plot([str(r[x]) for r in rows], [r[c] for r in rows], marker="o", label=c)
                ax.set_xlabel(x)
                ax.set_title(f"{b.get('benchmark', label)}: {key}")
                ax.legend(fontsize=8)
                ax.grid(alpha=0.3)
                name = f"bench_{i}.png"
                _save(fig, Path(name))
                plt.close(fig)
                lines += [f"![{b.get('benchmark', label)}]({name})", ""]
        if isinstance(b.get("machine"), dict):
            lines += ["machine: " + ", ".join(f"{k} {v}" for k, v in b["machine"].items()), ""]
    return lines


def _small_json_section(title: str, found: list[tuple[str, Path]]) -> list[str]:
    rows = []
    for label, path in found:
        d = _load(path)
        if isinstance(d, dict):
            rows.append({"run": label, **{k: v for k, v in d.items() if isinstance(v, (int, float, str))}})
    return [f"## {title}", "", *_table(rows)] if rows else []


def write_report(title: str, inputs: list[tuple[str, Path]]) -> Path:
    lines = [f"# {title}", ""]
    lines += _loss_section(_find(inputs, "metrics.jsonl"))
    lines += _eval_section(_find(inputs, "report.json"))
    lines += _small_json_section("Tokenizers", _find(inputs, "tokenizer_stats.json"))
    lines += _small_json_section("Quantization", _find(inputs, "quantize.json"))
    lines += _small_json_section("Perplexity", _find(inputs, "eval.json"))
    lines += _bench_section(_find(inputs, "bench.json"))
    if len(lines) == 2:
        lines += ["(no metrics.jsonl, report.json, bench.json, quantize.json or eval.json among the inputs)", ""]
    out = Path("report.md")
    with atomic_write(out) as f:
        f.write("\n".join(lines).rstrip() + "\n")
    return out


def main(argv: list[str]) -> int:
    """argv: TITLE NAME=PATH ..."""
    title, pairs = argv[0], argv[1:]
    inputs = [(name, Path(path)) for name, _, path in (p.partition("=") for p in pairs)]
    write_report(title, inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

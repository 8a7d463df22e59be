"""Writing an evaluation: report.json, predictions.jsonl, report.md and two PNG charts.

    report.json              settings, summary figures, the anchor (published figures), extra info
    predictions.jsonl        one record per example: input, reference, prediction, checks, errors
    report.md                the Markdown table (ours beside the anchor's), errors, accuracy by length
    accuracy_by_length.png   exact match and task scores per example length
    error_types.png          share of examples in each error category, ours and the anchor's

Charts use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tinylm.evaluation.harness import EvalResult
from tinylm.atomic_files import atomic_write, write_json

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PREDICTIONS = "predictions.jsonl"
LENGTH_PNG = "accuracy_by_length.png"
ERRORS_PNG = "error_types.png"

METRIC_LABELS = {
    "exact_match": "exact match (strict)",
    "exact_match_normalized": "exact match (normalized: case, whitespace)",
    "bleu": "BLEU (sacrebleu, 0-1)",
    "rouge_l": "ROUGE-L (F, stemmed)",
}


def write_report(result: EvalResult, out_dir: str | os.PathLike, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every file into out_dir; returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / REPORT_JSON, "markdown": out / REPORT_MD, "predictions": out / PREDICTIONS,
             "length_chart": out / LENGTH_PNG, "error_chart": out / ERRORS_PNG}
    write_json(paths["json"], report_dict(result, extra))
    with atomic_write(paths["predictions"]) as f:
        for record in result.records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with atomic_write(paths["markdown"]) as f:
        f.write(markdown(result, extra))
    plot_by_length(result, paths["length_chart"])
    plot_errors(result, paths["error_chart"])
    return paths


def report_dict(result: EvalResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    anchor = result.anchor
    return {
        "task": result.task,
        "split": result.split,
        "settings": result.settings,
        **result.summary,
        "anchor": None if anchor is None else {
            "source": anchor.source, "metrics": anchor.metrics, "errors": anchor.errors,
            "examples": anchor.examples, "notes": list(anchor.notes),
        },
        **({"extra": extra} if extra else {}),
    }


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _decoding(settings: dict[str, Any]) -> str:
    g = settings["generation"]
    return _search(g) + ("" if settings.get("constrained", True) else ", unconstrained")


def _search(g: dict[str, Any]) -> str:
    if g["num_beams"] > 1:
        return f"beam search, {g['num_beams']} beams"
    if g["temperature"] == 0:
        return "greedy"
    parts = [f"sampling, temperature {g['temperature']}"]
    if g["top_p"] < 1:
        parts.append(f"top-p {g['top_p']}")
    if g["top_k"]:
        parts.append(f"top-k {g['top_k']}")
    if g["seed"] is not None:
        parts.append(f"seed {g['seed']}")
    return ", ".join(parts)


def markdown(result: EvalResult, extra: dict[str, Any] | None = None) -> str:
    s, anchor = result.summary, result.anchor
    a_metrics = anchor.metrics if anchor else {}
    n = s["examples"]
    lines = [f"# {result.task}: {result.split} split, {n} examples, {_decoding(result.settings)}", ""]
    if extra and extra.get("model"):
        lines += [f"Model: {extra['model']}", ""]
    head = "| measure | tinylm |" + (" thesis |" if anchor else "")
    lines += [head, "|---|---|" + ("---|" if anchor else "")]

    def row(label: str, ours: str, theirs: str = "–") -> None:
        lines.append(f"| {label} | {ours} |" + (f" {theirs} |" if anchor else ""))

    for key, label in METRIC_LABELS.items():
        row(label, _fmt(s["metrics"][key]), _fmt(a_metrics.get(key)))
    if "success_rate" in a_metrics:
        row(f"success rate ({n} examples; thesis: {anchor.examples})",
            f"{100 * s['metrics']['exact_match_normalized']:.2f} %", f"{100 * a_metrics['success_rate']:.2f} %")
    for key, label in result.score_labels.items():
        row(label, _fmt(s["scores"][key]), _fmt(a_metrics.get(key)))
    sp = s["speed"]
    lat = sp["latency_s"]
    row(f"latency per example, alone (mean of {lat['examples']})", "–" if lat["mean"] is None else f"{1000 * lat['mean']:.1f} ms")
    row("latency per example, batched", f"{1000 * sp['latency_batched_s']:.1f} ms")
    row("generated tokens/s", f"{sp['tokens_per_s']:.0f}")
    lines.append("")

    errors = s["errors"]
    wrong = errors["not_exact"]
    lines += [f"## Errors ({wrong} of {n} predictions are not exact matches; categories overlap)", ""]
    a_wrong = anchor.examples - round(anchor.examples * a_metrics.get("success_rate", 1.0)) if anchor else 0
    head = "| category | tinylm: count | % of errors | % of all |"
    if anchor:
        head += f" thesis: count | % of errors ({a_wrong}) | % of all ({anchor.examples}) |"
    lines += [head, "|---|---|---|---|" + ("---|---|---|" if anchor else "")]
    for key, label in result.error_labels.items():
        c = errors["counts"].get(key, 0)
        cells = f"| {label} | {c} | {_pct(c, wrong)} | {_pct(c, n)} |"
        if anchor:
            ac = anchor.errors.get(key)
            cells += " – | – | – |" if ac is None else f" {ac} | {_pct(ac, a_wrong)} | {_pct(ac, anchor.examples)} |"
        lines.append(cells)
    lines.append("")

    keys = list(result.score_labels)
    lines += ["## Accuracy by length", "", "| length | examples | exact match | " + " | ".join(keys) + " |",
              "|---|---|---|" + "---|" * len(keys)]
    for r in s["by_length"]:
        lines.append(f"| {r['length']} | {r['examples']} | {r['exact_match']:.4f} | "
                     + " | ".join(f"{r[k]:.4f}" for k in keys) + " |")
    lines.append("")
    if s.get("by_category"):  # a task's own breakdown (code2's hand-written set: per category)
        lines += ["## By category", "", "| category | examples | exact match | " + " | ".join(keys) + " |",
                  "|---|---|---|" + "---|" * len(keys)]
        for cat, r in s["by_category"].items():
            lines.append(f"| {cat} | {r['n']} | {r['exact_match']:.4f} | "
                         + " | ".join("–" if k not in r else f"{r[k]:.4f}" for k in keys) + " |")
        lines.append("")
    if anchor and anchor.notes:
        lines += ["Thesis figures: " + anchor.source + ".", ""] + [f"- {note}" for note in anchor.notes] + [""]
    return "\n".join(lines)


def _pct(count: int, total: int) -> str:
    return f"{100 * count / total:.2f} %" if total else "–"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_by_length(result: EvalResult, path: Path) -> None:
    plt = _pyplot()
    rows = result.summary["by_length"]
    x = [r["length"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [r["exact_match"] for r in rows], marker="o", label="exact match")
    for key, label in result.score_labels.items():
        ax.plot(x, [r[key] for r in rows], marker=".", label=label)
    ax.set_xlabel("example length")
    ax.set_ylabel("fraction")
    ax.set_xticks(x)
    ax.set_ylim(min(0.0, *(r["exact_match"] for r in rows)) if rows else 0, 1.02)
    ax.set_title(f"{result.task} {result.split}: accuracy by length")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def plot_errors(result: EvalResult, path: Path) -> None:
    plt = _pyplot()
    s, anchor = result.summary, result.anchor
    keys = list(result.error_labels)
    ours = [100 * s["errors"]["counts"].get(k, 0) / s["examples"] for k in keys]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.4 if anchor else 0.6
    pos = list(range(len(keys)))
    ax.bar([p - (width / 2 if anchor else 0) for p in pos], ours, width, label="tinylm")
    if anchor:
        theirs = [100 * anchor.errors.get(k, 0) / anchor.examples for k in keys]
        ax.bar([p + width / 2 for p in pos], theirs, width, label="thesis (T5-Small)")
    ax.set_xticks(pos)
    ax.set_xticklabels([result.error_labels[k] for k in keys], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("% of all examples")
    ax.set_title(f"{result.task} {result.split}: error types")
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)

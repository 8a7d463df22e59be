"""Running a pipeline into a folder, the manifest that records it, and the rerun check.

    DIR/manifest.json      per stage: its key, kind, parameters, inputs (with sha256) and
                           outputs (every file of its folder, with sha256)
    DIR/<stage>/           the stage's outputs
    DIR/logs/<stage>.log   what the stage's command printed (not an output)

A stage's key is the sha256 of its kind, parameters, thread count, its inputs' hashes,
the keys of the stages it reads from and the tinylm version. A stage is skipped when the
manifest holds the same key and every output recorded there is still on disk with the
recorded hash; otherwise it runs, and so does every stage downstream (their keys contain
this one's). A stage runs in DIR/.<stage>.partial and is renamed to DIR/<stage> only when
its command succeeded and produced what its kind promises; only then is it recorded, and
the manifest is rewritten atomically. So a kill -9 at any moment leaves the stage
unrecorded (or recorded with its previous, intact outputs), and the next run redoes it.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tinylm
from tinylm.atomic_files import read_json, recover_interrupted_swap, write_json
from tinylm.errors import TinyLMError
from tinylm.pipeline.kinds import KINDS
from tinylm.pipeline.spec import Pipeline, Ref, Stage

MANIFEST = "manifest.json"
LOGS = "logs"
FORMAT = 1

# The documented rule for timings (docs/pipelines.md): in a .json or .jsonl output, a field
# whose name has one of these words (split at "_") holds a measured time or speed. The
# manifest records a second hash of such files with those fields left out, so `check` can
# tell "identical except timings" from a real difference.
TIMING_WORDS = frozenset({"s", "ms", "us", "sec", "secs", "seconds", "elapsed", "time", "latency", "per",
                          "throughput", "speedup", "timestamp", "date", "wall", "duration"})


# The same rule for text (a Markdown table of a JSON file's figures): a line that names a
# time or a speed. Two text files whose differing lines all do differ "in timings only".
TIMING_LINE = re.compile(r"latency|tokens/s|\bms\b|seconds|elapsed|\btime\b|throughput|per second", re.I)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, by path relative to it (sorted, '/'-separated)."""
    return {f.relative_to(folder).as_posix(): sha256_file(f)
            for f in sorted(folder.rglob("*")) if f.is_file()}


def combined_hash(hashes: dict[str, str]) -> str:
    """One hash for a set of files: the hash of their sorted "path sha256" lines."""
    return hashlib.sha256("".join(f"{p} {h}\n" for p, h in sorted(hashes.items())).encode()).hexdigest()


def is_timing_key(key: str) -> bool:
    return any(w in TIMING_WORDS for w in key.lower().replace("-", "_").split("_"))


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not is_timing_key(str(k))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def json_records(path: Path) -> list[Any] | None:
    """A .json file's object, or a .jsonl file's rows; None when the file is neither."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return [json.loads(text)]
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


def timing_free_hash(path: Path) -> str | None:
    """The hash of a JSON(L) file without its timing fields, when it has any; else None."""
    records = json_records(path)
    if records is None:
        return None
    stripped = _without_timings(records)
    if stripped == records:
        return None
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()


# The manifest ------------------------------------------------------------------------------

def read_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST
    if not path.exists():
        return {"format": FORMAT, "stages": {}}
    m = read_json(path)
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("stages"), dict):
        raise TinyLMError(f"{path} is not a tinylm pipeline manifest (format {FORMAT})")
    return m


def _write_manifest(out: Path, pipe: Pipeline, manifest: dict[str, Any]) -> None:
    manifest.update(format=FORMAT, pipeline=pipe.name, file=str(pipe.path), tinylm_version=tinylm.__version__,
                    vars=pipe.vars)
    write_json(out / MANIFEST, manifest)


def _intact(folder: Path, outputs: dict[str, str]) -> bool:
    if not folder.is_dir():
        return False
    for rel, digest in outputs.items():
        f = folder / rel
        if not f.is_file() or sha256_file(f) != digest:
            return False
    return True


# Running -------------------------------------------------------------------------------------

@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One runner per folder: a second would rename folders under the first."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TinyLMError(f"another pipeline run is using {out}") from None
        yield


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the runner dies, even by kill -9 (Linux), so
    no orphan keeps writing into a folder the next run is about to reuse."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _input_hash(ref: Ref, out: Path, manifest: dict[str, Any]) -> tuple[Path, str]:
    """Where an input is and its hash (a file's sha256, or the combined hash of a folder)."""
    if ref.stage is None:
        path = Path(ref.path)
        if not path.exists():
            raise TinyLMError(f"missing input {path}")
        return path, (sha256_file(path) if path.is_file() else combined_hash(tree_hashes(path)))
    outputs = manifest["stages"][ref.stage]["outputs"]
    path = out / ref.stage / ref.path
    if ref.path in outputs:
        return path, outputs[ref.path]
    inside = {p: h for p, h in outputs.items() if not ref.path or p.startswith(ref.path + "/")}
    if not inside:
        raise TinyLMError(f"missing input {ref}: stage {ref.stage!r} did not produce {ref.path or 'any file'}")
    return path, combined_hash({p[len(ref.path) + 1 if ref.path else 0:]: h for p, h in inside.items()})


def stage_key(stage: Stage, input_hashes: dict[str, str], upstream_keys: dict[str, str]) -> str:
    blob = json.dumps({"kind": stage.kind, "params": stage.params, "threads": stage.threads,
                       "inputs": input_hashes, "upstream": upstream_keys, "tinylm": tinylm.__version__},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _child_env(stage: Stage, inputs: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # The child imports the same tinylm as this process (a source checkout included).
    src = str(Path(tinylm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONHASHSEED"] = "0"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(stage.threads)
    env["PYTHON"] = sys.executable
    for name, path in inputs.items():
        env[f"IN_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"] = path
    return env


def _run_child(stage: Stage, work: Path, inputs: dict[str, str], log: Path) -> None:
    kind = KINDS[stage.kind]
    inv = kind.build(stage.params, inputs, stage.threads)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as log_f:
        log_f.write(("$ " + " ".join(inv.argv) + "\n").encode())
        log_f.flush()
        stdout = open(work / inv.stdout, "wb") if inv.stdout else log_f
        try:
            code = subprocess.call(inv.argv, cwd=work, env=_child_env(stage, inputs), stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=log_f, preexec_fn=_die_with_parent)
        finally:
            if inv.stdout:
                stdout.close()
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        print("\n".join("    " + line for line in tail), file=sys.stderr)
        raise TinyLMError(f"stage {stage.name!r} ({stage.kind}) failed with exit code {code}; log: {log}")
    missing = [o for o in stage.outputs if not (work / o).exists()]
    if missing:
        raise TinyLMError(f"stage {stage.name!r} did not produce {', '.join(missing)}; log: {log}")


def _adopt(work: Path, final: Path) -> None:
    """Move a finished stage folder into place (old one aside first, then deleted)."""
    old = final.parent / f".{final.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(work, final)
    shutil.rmtree(old, ignore_errors=True)


def run_pipeline(pipe: Pipeline, out: str | Path, *, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or skip) every stage of `pipe` into `out`; returns the manifest."""
    out = Path(out).resolve()
    with _locked(out):
        manifest = read_manifest(out)
        known = {s.name for s in pipe.stages}
        for name in list(manifest["stages"]):
            if name not in known:  # a stage removed from the file: forget it (its folder stays)
                del manifest["stages"][name]
        _write_manifest(out, pipe, manifest)
        n = len(pipe.stages)
        echo(f"pipeline {pipe.name}: {n} stages -> {out}")
        for i, stage in enumerate(pipe.stages, 1):
            recover_interrupted_swap(out / stage.name)
            paths, hashes = {}, {}
            for key, ref in stage.inputs.items():
                path, digest = _input_hash(ref, out, manifest)
                hashes[key] = digest
                paths[key] = os.path.relpath(path, out / stage.name) if ref.stage else str(path)
            upstream = {up: manifest["stages"][up]["key"] for up in stage.upstream()}
            key = stage_key(stage, hashes, upstream)
            prev = manifest["stages"].get(stage.name)
            label = f"[{i}/{n}] {stage.name} ({stage.kind})"
            if prev and prev["key"] == key and _intact(out / stage.name, prev["outputs"]):
                echo(f"{label}: unchanged, skipped")
                continue
            reason = "new" if prev is None else ("inputs or parameters changed" if prev["key"] != key
                                                 else "outputs missing or modified")
            echo(f"{label}: running ({reason}) ...")
            if prev is not None:  # until it is redone, the stage has no recorded outputs
                del manifest["stages"][stage.name]
                _write_manifest(out, pipe, manifest)
            work = out / f".{stage.name}.partial"
            if work.exists():
                shutil.rmtree(work)  # left by a run that was killed
            work.mkdir()
            started = time.perf_counter()
            try:
                _run_child(stage, work, paths, out / LOGS / f"{stage.name}.log")
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            _adopt(work, out / stage.name)
            folder = out / stage.name
            outputs = tree_hashes(folder)
            timing_free = {rel: h for rel in outputs if (h := timing_free_hash(folder / rel))}
            seconds = time.perf_counter() - started
            manifest["stages"][stage.name] = {
                "kind": stage.kind, "key": key, "params": stage.params, "threads": stage.threads,
                "inputs": {k: {"ref": str(stage.inputs[k]), "sha256": hashes[k]} for k in stage.inputs},
                "outputs": outputs, "outputs_without_timings": timing_free, "seconds": round(seconds, 2)}
            _write_manifest(out, pipe, manifest)
            echo(f"{label}: done in {seconds:.1f}s, {len(outputs)} files")
        _write_manifest(out, pipe, manifest)
        return manifest


# The check -------------------------------------------------------------------------------------

def _json_differences(a: Path, b: Path) -> list[str] | None:
    """Dotted paths of the fields that differ between two JSON(L) files (None: not JSON)."""
    ra, rb = json_records(a), json_records(b)
    if ra is None or rb is None:
        return None
    diffs: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else str(k))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{path}[{i}]")
        elif x != y:
            diffs.append(path or "(value)")

    walk(ra if len(ra) != 1 or b.suffix == ".jsonl" else ra[0], rb if len(rb) != 1 or b.suffix == ".jsonl" else rb[0], "")
    return diffs


def _field_names(paths: list[str]) -> list[str]:
    """'[3].elapsed' and '[7].elapsed' -> 'elapsed': the distinct leaf names."""
    return sorted({re.sub(r"\[\d+\]", "[]", p).split(".")[-1] for p in paths})


def _tensor_differences(a: Path, b: Path) -> str:
    from safetensors.numpy import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    changed = [k for k in ta if k in tb and (ta[k].shape != tb[k].shape or (ta[k] != tb[k]).any())]
    worst = max((float(abs(ta[k].astype("float64") - tb[k].astype("float64")).max()) for k in changed
                 if ta[k].shape == tb[k].shape), default=0.0)
    return (f"{len(changed)} of {len(ta)} tensors differ (largest difference {worst:.3g}): floating-point "
            "results depend on the order of additions (thread count, kernels)")


def explain(a: Path, b: Path, inputs_differ: list[str]) -> tuple[str, str]:
    """(class, why) for two different files: class "timings" (only fields under the timing
    rule differ), "derived" (made from inputs that differ), or "differs"."""
    diffs = _json_differences(a, b)
    if diffs is not None:
        fields = _field_names(diffs)
        if all(is_timing_key(p.split(".")[-1].split("[")[0]) for p in diffs):
            return "timings", f"only timing fields differ ({', '.join(fields)})"
        untimed = [f for f in fields if not is_timing_key(f.split("[")[0])]
        why = f"fields differ: {', '.join(untimed[:8])}{' ...' if len(untimed) > 8 else ''}"
        return ("derived", f"{why}; from inputs that differ ({', '.join(inputs_differ)})") if inputs_differ \
            else ("differs", why)
    pairs = _differing_lines(a, b)
    if pairs and all(TIMING_LINE.search(x) and TIMING_LINE.search(y) for x, y in pairs):
        return "timings", f"only lines with timings differ ({len(pairs)}, first: {pairs[0][0].strip()[:60]!r})"
    if inputs_differ:
        shown = _text_difference(a, b)
        return "derived", (f"made from inputs that differ ({', '.join(inputs_differ)})"
                           + (f"; {shown}" if shown else ""))
    if a.suffix == ".safetensors":
        return "differs", _tensor_differences(a, b)
    return "differs", _text_difference(a, b) or "binary file differs"


def _differing_lines(a: Path, b: Path) -> list[tuple[str, str]] | None:
    """The pairs of lines that differ in two text files of the same length; None otherwise."""
    try:
        la, lb = a.read_text(encoding="utf-8").splitlines(), b.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    if len(la) != len(lb):
        return None
    return [(x, y) for x, y in zip(la, lb) if x != y]


def _text_difference(a: Path, b: Path) -> str | None:
    """How two text files differ: the count of changed lines and the first pair; None if binary."""
    try:
        la, lb = a.read_text(encoding="utf-8").splitlines(), b.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    changed = [i for i, (x, y) in enumerate(zip(la, lb)) if x != y]
    n = len(changed) + abs(len(la) - len(lb))
    if not changed:
        return f"{n} lines differ (one file is longer)"
    i = changed[0]
    return f"{n} lines differ, first line {i + 1}: {la[i].strip()[:70]!r} vs {lb[i].strip()[:70]!r}"


def _input_label(ref: Ref, checked: dict[str, dict[str, dict[str, str]]]) -> str:
    """An input that differs, and "timings only" when every file of it that differs does so
    only in timing fields (known from its stage's comparison, made first)."""
    if ref.stage is None or ref.stage not in checked:
        return str(ref)
    inside = [f["status"] for p, f in checked[ref.stage].items()
              if not ref.path or p == ref.path or p.startswith(ref.path + "/")]
    return f"{ref}: timings only" if all(st in ("identical", "timings") for st in inside) else str(ref)


def check_pipeline(pipe: Pipeline, out: str | Path, fresh: str | Path | None = None, *,
                   echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Rerun every stage into a fresh folder and compare each output with `out`'s manifest."""
    out = Path(out).resolve()
    if not (out / MANIFEST).exists():
        raise TinyLMError(f"{out} has no {MANIFEST}; run the pipeline first (tinylm pipeline run)")
    manifest = read_manifest(out)
    missing = [s.name for s in pipe.stages if s.name not in manifest["stages"]]
    if missing:
        raise TinyLMError(f"{out} has no finished run of stage(s) {', '.join(missing)}; run the pipeline first")
    if fresh is None:
        fresh = Path(tempfile.mkdtemp(prefix=f"{out.name}.check-", dir=out.parent))
    fresh = Path(fresh).resolve()
    if fresh.exists() and any(fresh.iterdir()):
        raise TinyLMError(f"{fresh} is not empty; the check reruns into a fresh folder")
    echo(f"rerunning every stage into {fresh}")
    run_pipeline(pipe, fresh, echo=echo)
    return compare_runs(pipe, out, fresh, echo=echo)


def compare_runs(pipe: Pipeline, out: Path, fresh: Path, *, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Compare two finished runs of `pipe` output by output; writes out/check.json."""
    manifest, again = read_manifest(out), read_manifest(fresh)
    result: dict[str, Any] = {"reference": str(out), "rerun": str(fresh), "stages": {}}
    counts = {"identical": 0, "timings": 0, "derived": 0, "differs": 0, "missing": 0}
    for stage in pipe.stages:
        first, second = manifest["stages"][stage.name], again["stages"][stage.name]
        inputs_differ = [_input_label(stage.inputs[k], result["stages"]) for k in stage.inputs
                         if first["inputs"].get(k, {}).get("sha256") != second["inputs"][k]["sha256"]]
        files: dict[str, dict[str, str]] = {}
        for rel in sorted(set(first["outputs"]) | set(second["outputs"])):
            h1, h2 = first["outputs"].get(rel), second["outputs"].get(rel)
            if h1 == h2:
                status, why = "identical", ""
            elif h1 is None or h2 is None:
                status, why = "missing", f"only in the {'rerun' if h1 is None else 'reference'}"
            else:
                status, why = explain(out / stage.name / rel, fresh / stage.name / rel, inputs_differ)
            counts[status] += 1
            files[rel] = {"status": status, "why": why} if why else {"status": status}
        result["stages"][stage.name] = files
        same = sum(f["status"] == "identical" for f in files.values())
        echo(f"{stage.name}: {same}/{len(files)} files bit-identical")
        for rel, f in files.items():
            if f["status"] != "identical":
                echo(f"    {rel}: {f['status']}: {f['why']}")
    result["counts"] = counts
    write_json(out / "check.json", result)
    echo("check: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" (details: {out / 'check.json'})")
    return result

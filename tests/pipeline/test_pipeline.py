"""tinylm pipeline: keys and skipping, downstream reruns, crash safety, the check, bad files.

Most stages are shell stages (fast, and they count their own runs in a file the test
reads); one test chains tiny real stages (gen-data, tokenizer, train, report).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinylm.cli.main import main
from tinylm.pipeline import load_pipeline
from tinylm.pipeline.runner import MANIFEST, check_pipeline, run_pipeline, sha256_file

SRC = str(Path(__file__).resolve().parents[2] / "src")

SHELL = """
[pipeline]
name = "shells"

[vars]
word = "hello"
suffix = "!"

[budgets.quick]
word = "hi"

[stages.a]
kind = "shell"
run = "echo a >> $COUNT_FILE; echo ${word} > a.txt"
outputs = ["a.txt"]

[stages.b]
kind = "shell"
inputs = { a = "@a/a.txt" }
run = "echo b >> $COUNT_FILE; if [ -e \\"$BLOCK_FILE\\" ]; then touch started; while true; do sleep 0.05; done; fi; cat $IN_a > b.txt; echo '${suffix}' >> b.txt"
outputs = ["b.txt"]

[stages.c]
kind = "shell"
inputs = { b = "@b" }
run = "echo c >> $COUNT_FILE; cat $IN_b/b.txt $IN_b/b.txt > c.txt; echo '{\\"lines\\": 4, \\"elapsed_s\\": '$RANDOM.$RANDOM'}' > metrics.json"
outputs = ["c.txt", "metrics.json"]
"""


@pytest.fixture
def shell_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COUNT_FILE", str(tmp_path / "count.txt"))
    monkeypatch.setenv("BLOCK_FILE", str(tmp_path / "block"))
    path = tmp_path / "p.toml"
    path.write_text(SHELL)
    return path


def runs(tmp_path: Path) -> list[str]:
    """The stages that ran since the last call (each shell stage logs its name)."""
    f = tmp_path / "count.txt"
    ran = f.read_text().split() if f.exists() else []
    f.unlink(missing_ok=True)
    return ran


def quiet(_: str) -> None:
    pass


def assert_consistent(out: Path) -> None:
    """Every output the manifest records is on disk with its hash; no half-run folders."""
    m = json.loads((out / MANIFEST).read_text())
    for name, entry in m["stages"].items():
        on_disk = sorted(p.relative_to(out / name).as_posix() for p in (out / name).rglob("*") if p.is_file())
        assert on_disk == sorted(entry["outputs"])
        for rel, digest in entry["outputs"].items():
            assert sha256_file(out / name / rel) == digest
    assert not list(out.glob(".*.partial")) and not list(out.glob(".*.old"))


def test_unchanged_stages_are_skipped(shell_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pipeline(load_pipeline(shell_file), out, echo=quiet)
    assert runs(tmp_path) == ["a", "b", "c"]
    assert (out / "b" / "b.txt").read_text() == "hello\n!\n"
    lines: list[str] = []
    run_pipeline(load_pipeline(shell_file), out, echo=lines.append)
    assert runs(tmp_path) == []
    assert sum("unchanged, skipped" in line for line in lines) == 3
    assert_consistent(out)


def test_a_change_reruns_the_stage_and_everything_downstream(shell_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pipeline(load_pipeline(shell_file), out, echo=quiet)
    runs(tmp_path)
    key_a = json.loads((out / MANIFEST).read_text())["stages"]["a"]["key"]
    run_pipeline(load_pipeline(shell_file, overrides={"suffix": "?"}), out, echo=quiet)  # a parameter of b
    assert runs(tmp_path) == ["b", "c"]
    assert (out / "c" / "c.txt").read_text() == "hello\n?\nhello\n?\n"
    run_pipeline(load_pipeline(shell_file, budget="quick", overrides={"suffix": "?"}), out, echo=quiet)  # of a
    assert runs(tmp_path) == ["a", "b", "c"]
    assert json.loads((out / MANIFEST).read_text())["stages"]["a"]["key"] != key_a
    assert (out / "c" / "c.txt").read_text() == "hi\n?\nhi\n?\n"
    # An output edited by hand: its stage runs again (and, its key being the same, only it).
    (out / "b" / "b.txt").write_text("tampered\n")
    run_pipeline(load_pipeline(shell_file, budget="quick", overrides={"suffix": "?"}), out, echo=quiet)
    assert runs(tmp_path) == ["b"]
    assert (out / "b" / "b.txt").read_text() == "hi\n?\n"
    assert_consistent(out)


def test_kill_9_mid_stage_leaves_it_unrecorded_and_a_rerun_finishes(shell_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "block").touch()  # stage b waits forever while this file exists
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tinylm.cli.main import main; sys.exit(main())",
                             "pipeline", "run", str(shell_file), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = out / ".b.partial" / "started"
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "stage b never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    m = json.loads((out / MANIFEST).read_text())
    assert list(m["stages"]) == ["a"]  # b was mid-run: nothing of it is recorded
    assert not (out / "b").exists()
    (tmp_path / "block").unlink()
    runs(tmp_path)
    lines: list[str] = []
    run_pipeline(load_pipeline(shell_file), out, echo=lines.append)
    assert runs(tmp_path) == ["b", "c"]
    assert "[1/3] a (shell): unchanged, skipped" in lines
    assert (out / "c" / "c.txt").read_text() == "hello\n!\nhello\n!\n"
    assert_consistent(out)


def test_check_reports_identical_outputs_and_explains_timings(shell_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pipe = load_pipeline(shell_file)
    run_pipeline(pipe, out, echo=quiet)
    result = check_pipeline(pipe, out, tmp_path / "fresh", echo=quiet)
    assert result["stages"]["a"] == {"a.txt": {"status": "identical"}}
    assert result["stages"]["c"]["c.txt"] == {"status": "identical"}
    assert result["stages"]["c"]["metrics.json"]["status"] == "timings"
    assert "elapsed_s" in result["stages"]["c"]["metrics.json"]["why"]
    assert result["counts"] == {"identical": 3, "timings": 1, "derived": 0, "differs": 0, "missing": 0}
    assert json.loads((out / "check.json").read_text())["counts"] == result["counts"]


def test_check_flags_a_real_difference(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[stages.r]\nkind = "shell"\nrun = "echo $RANDOM$RANDOM > r.txt; echo fixed > f.txt"\n'
                    '[stages.s]\nkind = "shell"\ninputs = { r = "@r/r.txt" }\nrun = "cp $IN_r s.txt"\n')
    out = tmp_path / "out"
    assert main(["pipeline", "run", str(path), "--out", str(out)]) == 0
    assert main(["pipeline", "check", str(path), "--out", str(out), "--fresh", str(tmp_path / "again")]) == 1
    stages = json.loads((out / "check.json").read_text())["stages"]
    assert stages["r"]["f.txt"]["status"] == "identical"
    assert stages["r"]["r.txt"]["status"] == "differs"
    assert stages["s"]["s.txt"]["status"] == "derived"
    assert stages["s"]["s.txt"]["why"].startswith("made from inputs that differ (@r/r.txt); 1 lines differ, first line 1")


BAD = {
    "cycle": ('[stages.a]\nkind = "shell"\ninputs = { x = "@b/b.txt" }\nrun = "true"\noutputs = ["a.txt"]\n'
              '[stages.b]\nkind = "shell"\ninputs = { x = "@a/a.txt" }\nrun = "true"\noutputs = ["b.txt"]\n',
              "cycle between stages: a -> b -> a"),
    "missing file": ('[stages.a]\nkind = "shell"\ninputs = { x = "nowhere.txt" }\nrun = "true"\n', "missing input"),
    "missing output": ('[stages.a]\nkind = "shell"\nrun = "true"\noutputs = ["a.txt"]\n'
                       '[stages.b]\nkind = "shell"\ninputs = { x = "@a/other.txt" }\nrun = "true"\n',
                       "missing input @a/other.txt"),
    "unknown stage": ('[stages.b]\nkind = "shell"\ninputs = { x = "@zz" }\nrun = "true"\n', "no stage named 'zz'"),
    "unknown kind": ('[stages.a]\nkind = "compile"\n', "unknown stage kind 'compile'"),
    "finetune without data": ('[stages.a]\nkind = "finetune"\ninputs = { model = "." }\n', "finetune needs data"),
    "unknown parameter": ('[stages.a]\nkind = "gen-data"\nexamples = 5\n', "unknown parameter 'examples'"),
    "bad type": ('[stages.a]\nkind = "gen-data"\nn = "many"\n', "parameter 'n' must be int"),
    "bad choice": ('[stages.a]\nkind = "quantize"\nmethod = "int3"\ninputs = { model = "." }\n', "must be one of"),
    "unknown variable": ('[stages.a]\nkind = "gen-data"\nn = "${count}"\n', "unknown variable ${count}"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text, message = BAD[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["pipeline", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinylm: error: ") and message in err, err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_unknown_set_and_budget_are_one_line(shell_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["pipeline", "run", str(shell_file), "--set", "nope=1"]) == 2
    assert main(["pipeline", "run", str(shell_file), "--budget", "huge"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["tinylm: error: --set nope: no such variable (defined: word, suffix)",
                   "tinylm: error: unknown budget 'huge' (this file has: quick)"]


def test_a_failing_stage_is_not_recorded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[stages.a]\nkind = "shell"\nrun = "echo partial > x.txt; echo boom >&2; exit 3"\n')
    out = tmp_path / "out"
    assert main(["pipeline", "run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "boom" in err and "stage 'a' (shell) failed with exit code 3" in err
    assert json.loads((out / MANIFEST).read_text())["stages"] == {}
    assert not (out / "a").exists() and not (out / ".a.partial").exists()


REAL = """
[pipeline]
name = "tiny"
threads = 1

[stages.data]
kind = "gen-data"
n = 120
seed = 3

[stages.tok]
kind = "tokenizer"
type = "char"
inputs = { text = "@data/train.jsonl" }

[stages.train]
kind = "train"
inputs = { pairs = "@data/train.jsonl", val_pairs = "@data/valid.jsonl", tokenizer = "@tok/tokenizer.json" }
set = ["n_layer=2", "n_head=2", "n_embd=32", "block_size=1024"]
max_steps = 4
batch_size = 2
eval_every = 2
eval_batches = 1
log_every = 1
warmup_steps = 1

[stages.report]
kind = "report"
title = "tiny"
inputs = { run = "@train" }
"""


def test_real_stages_rerun_bit_identical(tmp_path: Path) -> None:
    """gen-data -> tokenizer -> train -> report; the check finds every output bit-identical
    except the fields the timing rule names (same seed, one thread). Eight child processes
    that import torch: the slowest test here (15 s measured on the shared 2-core machine)."""
    path = tmp_path / "tiny.toml"
    path.write_text(REAL)
    pipe = load_pipeline(path)
    out = tmp_path / "out"
    run_pipeline(pipe, out, echo=quiet)
    m = json.loads((out / MANIFEST).read_text())
    assert {"last/model.safetensors", "metrics.jsonl", "best/tokenizer.json"} <= set(m["stages"]["train"]["outputs"])
    # The training used the tokenizer stage's file, not one of its own.
    assert (out / "train" / "last" / "tokenizer.json").read_bytes() == (out / "tok" / "tokenizer.json").read_bytes()
    assert "![loss curves](loss.png)" in (out / "report" / "report.md").read_text()
    result = check_pipeline(pipe, out, tmp_path / "fresh", echo=quiet)
    assert result["counts"]["differs"] == 0 and result["counts"]["missing"] == 0, result
    assert result["stages"]["train"]["last/model.safetensors"] == {"status": "identical"}
    assert result["stages"]["data"]["train.jsonl"] == {"status": "identical"}
    assert result["stages"]["report"]["loss.png"] == {"status": "identical"}


COMPRESS = """
[pipeline]
name = "tiny-compress"
threads = 1

[stages.text]
kind = "shell"
run = "for i in $(seq 60); do echo \\"the cat sat on the mat $i; the dog ran to the log.\\"; done > corpus.txt"
outputs = ["corpus.txt"]

[stages.train]
kind = "train"
inputs = { data = "@text/corpus.txt" }
tokenizer = "char"
set = ["n_layer=2", "n_head=2", "n_embd=32", "block_size=32"]
max_steps = 3
batch_size = 4
eval_every = 0
warmup_steps = 1

[stages.prune]
kind = "prune"
inputs = { model = "@train/last", text = "@text/corpus.txt" }
method = "structured"
ffn = 0.5

[stages.distill]
kind = "distill"
inputs = { teacher = "@train/last", data = "@text/corpus.txt" }
student = "gpt2-style-nano"
set = ["n_layer=1", "n_head=2", "n_embd=16"]
task = "text"
max_steps = 2
batch_size = 4

[stages.finetune]
kind = "finetune"
inputs = { model = "@train/last", data = "@text/corpus.txt" }
method = "lora"
rank = 2
max_steps = 2
batch_size = 4
"""


def test_prune_distill_finetune_stages_run_and_produce_their_files(tmp_path: Path) -> None:
    """The three compression verbs as stages on a tiny text model: each child accepts its command
    line, writes what its kind promises, and the result loads (five torch children, ~20 s)."""
    import tinylm

    path = tmp_path / "compress.toml"
    path.write_text(COMPRESS)
    out = tmp_path / "out"
    run_pipeline(load_pipeline(path), out, echo=quiet)
    assert_consistent(out)
    teacher = tinylm.load(out / "train" / "last").model.num_params()
    assert tinylm.load(out / "prune" / "model").model.num_params() < teacher
    assert json.loads((out / "prune" / "prune.json").read_text())["parameters_before"] == teacher
    summary = json.loads((out / "distill" / "summary.json").read_text())
    assert summary["steps"] == 2 and tinylm.load(out / "distill" / "model").model.num_params() < teacher
    assert (out / "finetune" / "adapter").is_dir() and not (out / "finetune" / "tensorboard").exists()
    assert json.loads((out / "finetune" / "finetune.json").read_text())["method"] == "lora"

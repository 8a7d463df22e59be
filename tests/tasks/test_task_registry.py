"""The task contract: the library's shared layers reach tasks only through the registry, and a
new task (a toy one, defined in the tests) plugs in without the library naming it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinylm.cli.main import main
from tinylm.tasks import registry

SRC = Path(__file__).resolve().parents[2] / "src" / "tinylm"
SHARED_LAYERS = ["constrain", "serve", "evaluation", "cli", "training", "data", "tokenizers", "presets.py", "api.py"]


def test_shared_layers_import_no_task_by_name():
    pattern = re.compile(r"tasks\.(code2|arithmetic)")
    offenders = []
    for layer in SHARED_LAYERS:
        path = SRC / layer
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            offenders += [f"{file.relative_to(SRC)}:{i}" for i, line in enumerate(file.read_text().splitlines(), 1)
                          if pattern.search(line)]
    assert not offenders


def test_the_registered_tasks():
    plugins = registry.plugins()
    assert [p.name for p in plugins] == ["code2", "arithmetic"]
    for p in plugins:
        assert p.prompt_format == "paired" and p.train is not None and p.cli is not None
    assert registry.get_plugin("code2").routes is not None and registry.get_plugin("code2").evaluation is not None


def test_the_help_imports_the_plugins_but_not_torch():
    code = "import sys; from tinylm.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture
def with_toy_task(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setattr(registry, "TASK_PACKAGES", (*registry.TASK_PACKAGES, "toy_echo"))
    yield registry.get_plugin("echo")


def test_a_new_task_plugs_in(with_toy_task, tmp_path, capsys):
    from fastapi.testclient import TestClient

    import tinylm
    from tinylm.data.prompt_format import prompt_format_of
    from tinylm.serve import create_app
    from tinylm.training.recipe import load_recipe

    assert main(["echo"]) == 0 and "echo verb" in capsys.readouterr().out  # its CLI verb
    assert load_recipe("echo-tiny").task == "echo"  # its recipe, through the one loader
    assert prompt_format_of({"task": "echo"}).name == "paired"
    out = tmp_path / "run"
    assert main(["train", "--recipe", "echo-tiny", "--out", str(out), "--quiet"]) == 0  # its training
    config = json.loads((out / "last" / "config.json").read_text())
    assert config["extra"]["task"] == "echo" and config["extra"]["prompt_format"] == "paired"
    with TestClient(create_app(tinylm.load(out / "last"), model_name="toy")) as client:  # its route
        assert client.get("/v1/echo/ping").json() == {"model": "toy"}
        assert client.get("/v1/models").json()["data"][0]["task"] == "echo"

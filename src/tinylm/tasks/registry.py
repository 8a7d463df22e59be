"""The task plug-in registry: what a task supplies, and where the library finds it.

A task is a package under tinylm/tasks/ with a `plugin.py` that defines `PLUGIN`, a
TaskPlugin. The library's shared layers never import a task by name; they ask here:

    constrain   named grammars               plugin.grammars
    presets     recipes (one loader)         plugin.recipes, plugin.settings
    training    the task's data and run      plugin.train(recipe, out_dir, ...)
    evaluation  the evaluation Task          plugin.evaluation(model_extra, data, preset)
    api/serve   how its prompts are framed   plugin.prompt_format
    cli         its own verbs                plugin.cli(subparsers)
    serve       its own HTTP routes          plugin.routes(app, server)

A plugin module must stay light (no torch, no data generation at import): `tinylm --help`
imports every plugin to list their verbs, so everything heavy is imported inside the
functions the plugin points to.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tinylm.errors import TinyLMError

# The task packages, in the order of `tinylm --help`. A new task adds its package here.
TASK_PACKAGES: tuple[str, ...] = ("tinylm.tasks.code2", "tinylm.tasks.arithmetic")


@dataclass(frozen=True)
class NamedGrammar:
    """A grammar `--grammar NAME` knows: a description and the EBNF (GBNF) text, built on demand."""

    description: str
    ebnf: Callable[[], str]


@dataclass(frozen=True)
class TaskPlugin:
    name: str  # what recipes, checkpoints (config.extra["task"]) and `--task` call it
    description: str  # one line, for help texts and error messages
    # How the task's models read a prompt (tinylm.data.prompt_format): "paired" for the
    # `[bos] input [sep]` framing of paired training data.
    prompt_format: str
    # The task part of a recipe (`task = {...}`): a dataclass whose fields are the task's
    # settings; building it validates them.
    settings: type
    # The task's measured recipes, by name, in the hub's format (tinylm.training.recipe).
    recipes: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # train(recipe, out_dir, *, data=None, threads=0, quiet=False, callbacks=()) -> summary with .model_dir;
    # `callbacks` are Trainer callbacks added after the task's own (tinylm tune's pruning check)
    train: Callable[..., Any] | None = None
    # evaluation(model_extra, data, preset) -> an evaluation.Task for that model
    evaluation: Callable[..., Any] | None = None
    grammars: Mapping[str, NamedGrammar] = field(default_factory=dict)
    cli: Callable[[Any], None] | None = None  # register(subparsers): adds `tinylm NAME ...`
    routes: Callable[[Any, Any], None] | None = None  # add_routes(app, server: serve.app.TaskServer)


_loaded: dict[str, TaskPlugin] = {}


def plugins() -> list[TaskPlugin]:
    """Every registered task, in TASK_PACKAGES order."""
    out = []
    for package in TASK_PACKAGES:
        plugin = _loaded.get(package)
        if plugin is None:
            plugin = importlib.import_module(f"{package}.plugin").PLUGIN
            _loaded[package] = plugin
        out.append(plugin)
    return out


def task_names() -> list[str]:
    return [p.name for p in plugins()]


def get_plugin(name: str) -> TaskPlugin:
    for plugin in plugins():
        if plugin.name == name:
            return plugin
    raise TinyLMError(f"unknown task {name!r}; choose one of: {', '.join(task_names())}")


def model_task(model_extra: Mapping[str, Any] | None) -> TaskPlugin | None:
    """The plug-in of the task a checkpoint was trained for (config.extra["task"]), if any."""
    name = (model_extra or {}).get("task")
    return get_plugin(name) if name else None

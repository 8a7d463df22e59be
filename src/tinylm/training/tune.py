"""Hyperparameter search with Optuna: `tinylm tune RECIPE --trials N --out DIR`.

    space = load_space("full")                      # or a FILE.toml / FILE.json
    tuner = Tuner(load_recipe("code2-thesis"), space, TuneSettings(out_dir="runs/tune", trials=20,
                  budget_s=45, metric="exact_match"))
    tuner.run()                                     # trials until the study holds 20, then plots

Each trial is one training run of the recipe with the sampled settings applied, made by
the same code as `tinylm train --recipe` (a task recipe through its plug-in's `train`, a
text or pairs recipe through training/run.py), in DIR/trials/NNNN/ (NNNN = the trial's
number), with DIR/trials/NNNN/trial.json saying how it ended (running, complete, pruned,
failed).

The study lives in an Optuna RDB storage: by default a SQLite file, DIR/study.db; a
`postgresql://` URL lets several `tinylm tune` processes, on several machines, share one
study (each with its own DIR for its trials' folders). What the study searches (recipe,
space, metric, budget) is recorded in the study itself, so a worker that joins with other
settings is refused instead of mixing two searches into one.

The study stops at N trials that count (complete or pruned): every worker checks before
and after it asks for a trial, so two workers racing for the last one leave the surplus
trial failed (marked "surplus"), not counted. A killed worker's RUNNING trial is marked
failed when the study is next opened: at once when it ran on this machine (its process is
gone), after HEARTBEAT_GRACE_S without a heartbeat otherwise (Optuna's heartbeat).

Pruning (Optuna's MedianPruner) watches the Trainer's periodic evaluation
(train.eval_every): a trial whose validation loss at a step is worse than the median of the
earlier trials at that step is stopped. The objective is the run's best validation loss
(minimised), or a task's exact match on its validation split (maximised, through the task
registry's evaluation); a maximised study reports -val_loss to the pruner, so the pruner
compares in the study's direction.

The space: a built-in (SPACES: "full", the UGR thesis's table 3.4; "scratch", for training a
recipe from scratch; "lora", the thesis's LoRA rows)
or a file. A key is a TrainConfig field (`lr`), or `model.NAME` (a ModelConfig field),
`task.NAME` (the task's settings) in a table of that name:

    batch_size = [4, 8, 16, 32]                  # a list: choices
    lr = {low = 1e-4, high = 3e-4, log = true}   # a range: float, or int if both bounds are ints
    [model]
    dropout = {low = 0.0, high = 0.2}

A section whose settings `tinylm tune` cannot apply yet is refused with a note: `lora`
(rank, alpha, dropout) belongs to `tinylm finetune`; it plugs in by giving SECTIONS["lora"]
an `apply` and the trial a fine-tuning runner.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinylm.atomic_files import atomic_write, read_settings_file, write_json
from tinylm.errors import TinyLMError
from tinylm.training.recipe import Recipe

METRICS = {"val_loss": "minimize", "exact_match": "maximize"}
TRIALS_FOLDER = "trials"
TRIAL_FILE = "trial.json"
STUDY_FILE = "study.db"
BEST_RECIPE_FILE = "best_recipe.json"
SUMMARY_FILE = "tune_summary.json"
HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"
# Optuna's heartbeat: a RUNNING trial whose worker has been silent for the grace period is
# failed by the next worker that asks for a trial (a worker on another machine, or one whose
# process id was reused). Long enough not to fail a trial whose worker is just busy.
HEARTBEAT_S = 15
HEARTBEAT_GRACE_S = 90
# A worker stops after this many of its trials fail in a row: a fault that fails every trial
# (not one trial's diverged lr) must not loop forever, as failed trials do not count.
MAX_FAILURES_IN_A_ROW = 3
STUDY_ATTR = "tinylm"  # the study's user attribute recording what it searches


# -- the search space ----------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One searched setting: choices, or a float/int range (log-uniform with `log`)."""

    key: str  # "lr" (a TrainConfig field), "model.dropout", "task.error_weight", "lora.r"
    choices: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False

    @property
    def section(self) -> str:
        return self.key.partition(".")[0] if "." in self.key else "train"

    @property
    def name(self) -> str:
        return self.key.partition(".")[2] if "." in self.key else self.key

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)

    def extremes(self) -> list[Any]:
        """The values that bound what this parameter can take (checked against the recipe up front)."""
        return list(self.choices) if self.choices else [self.low, self.high]

    def to_dict(self) -> Any:
        if self.choices:
            return list(self.choices)
        return {"low": self.low, "high": self.high, **({"log": True} if self.log else {})}


@dataclass(frozen=True)
class Section:
    """Where a space's keys go: the fields a recipe accepts there, and how values are applied."""

    fields: Callable[[Recipe], set[str]]
    apply: Callable[[Recipe, dict[str, Any]], Recipe] | None  # None: not something `tinylm tune` can run yet
    note: str = ""


def _train_fields(recipe: Recipe) -> set[str]:
    from tinylm.training.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} - {"out_dir"}


def _model_fields(recipe: Recipe) -> set[str]:
    from tinylm.config import ModelConfig
    from tinylm.training.recipe import MODEL_FIELDS_SET_BY_THE_RUN

    return {f.name for f in dataclasses.fields(ModelConfig)} - set(MODEL_FIELDS_SET_BY_THE_RUN)


def _task_fields(recipe: Recipe) -> set[str]:
    return {f.name for f in dataclasses.fields(recipe.settings)} if recipe.settings is not None else set()


def _apply_train(recipe: Recipe, values: dict[str, Any]) -> Recipe:
    from tinylm.training.config import TrainConfig

    values = dict(values)
    if "lr" in values and "min_lr" not in values:
        # The decay ends at the recipe's own fraction of the peak lr, so a sampled lr below
        # the recipe's min_lr still makes a valid (and comparable) schedule.
        base = {**dataclasses.asdict(TrainConfig()), **recipe.train}
        values["min_lr"] = values["lr"] * base["min_lr"] / base["lr"]
    return recipe.replace(train=values)


SECTIONS: dict[str, Section] = {
    "train": Section(_train_fields, _apply_train),
    "model": Section(_model_fields, lambda recipe, values: recipe.replace(model=values)),
    "task": Section(_task_fields, lambda recipe, values: recipe.replace(settings=values)),
    "lora": Section(lambda recipe: {"r", "alpha", "dropout"}, None,
                    "LoRA settings are options of `tinylm finetune --method lora`; `tinylm tune` trains "
                    "`tinylm train` recipes, so the lora space runs once fine-tuning recipes plug in"),
}

# The UGR thesis's table 3.4 (3 epochs fixed; tinylm's runs are fixed by max_steps or the
# budget instead). Its lr range was for fine-tuning a pretrained T5-Small.
SPACES: dict[str, dict[str, Any]] = {
    "full": {
        "batch_size": [4, 8, 16, 32],
        "grad_accum": [1, 2, 4, 8],
        "lr": {"low": 1e-4, "high": 3e-4, "log": True},
        "weight_decay": {"low": 0.0, "high": 1e-3},
    },
    # Training from scratch (a recipe such as code2-thesis, not a fine-tune): the table 3.4
    # learning rates are a pretrained model's and leave a fresh model untrained (every trial
    # of such a study scored exact match 0.00). Ranges around what trains the CODE-2 recipes
    # (lr 3e-3, batch 64, no weight decay, no dropout).
    "scratch": {
        "batch_size": [32, 64, 128],
        "lr": {"low": 1e-3, "high": 1e-2, "log": True},
        "warmup_steps": [0, 25, 50, 100],
        "weight_decay": {"low": 0.0, "high": 0.1},
        "model": {"dropout": {"low": 0.0, "high": 0.1}},
    },
    "lora": {
        "lora": {
            "r": [4, 8, 16, 64],
            "alpha": [16, 32, 64, 128, 256, 512, 1024],
            "dropout": {"low": 0.0, "high": 0.3},
        },
    },
}


@dataclass(frozen=True)
class Space:
    name: str
    params: tuple[Param, ...]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.params:
            if p.section == "train":
                out[p.name] = p.to_dict()
            else:
                out.setdefault(p.section, {})[p.name] = p.to_dict()
        return out


def _param(key: str, spec: Any) -> Param:
    def bad(why: str) -> TinyLMError:
        return TinyLMError(f"space key {key}: {why}")

    number = (int, float)
    if isinstance(spec, list):
        if not spec or not all(isinstance(v, (str, int, float, bool)) for v in spec):
            raise bad("choices must be a non-empty list of numbers, strings or booleans")
        return Param(key, choices=tuple(spec))
    if not isinstance(spec, dict):
        raise bad("expected a list of choices or a range {low = ..., high = ...}")
    unknown = sorted(set(spec) - {"low", "high", "log"})
    if unknown:
        raise bad(f"unknown range field(s) {', '.join(unknown)}; a range has low, high and optionally log")
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    if not all(isinstance(v, number) and not isinstance(v, bool) for v in (low, high)):
        raise bad("a range needs numbers low and high")
    if not isinstance(log, bool):
        raise bad("log must be true or false")
    if not low < high:
        raise bad(f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise bad("a log range needs low > 0")
    return Param(key, low=low, high=high, log=log)


def space_from_dict(name: str, d: Any) -> Space:
    """A space from its table form (see the module docstring); shapes checked, keys not yet."""
    if not isinstance(d, dict) or not d:
        raise TinyLMError(f"space {name}: expected a table of settings to search")
    params = []
    for key, spec in d.items():
        if key in SECTIONS and key != "train":
            if not isinstance(spec, dict) or not spec:
                raise TinyLMError(f"space {name}: [{key}] must be a table of settings")
            params += [_param(f"{key}.{sub}", sub_spec) for sub, sub_spec in spec.items()]
        else:
            params.append(_param(key, spec))
    return Space(name, tuple(params))


def load_space(spec: str) -> Space:
    """A built-in space (SPACES) or a FILE.toml / FILE.json."""
    if spec in SPACES:
        return space_from_dict(spec, SPACES[spec])
    path = Path(spec)
    if path.suffix not in (".toml", ".json"):
        raise TinyLMError(f"unknown space {spec!r}; choose one of: {', '.join(SPACES)} (or a FILE.toml / FILE.json)")
    d = read_settings_file(path, "space")
    return space_from_dict(str(path), d)


def check_space(space: Space, recipe: Recipe) -> None:
    """Every key must name a setting the recipe has and `tinylm tune` can apply, and every
    bound of every range and every choice must make a valid recipe."""
    for p in space.params:
        section = SECTIONS.get(p.section)
        if section is None:
            raise TinyLMError(f"space {space.name}: unknown section {p.section!r} of key {p.key}; "
                              f"sections: {', '.join(s for s in SECTIONS if s != 'train')} (train keys need none)")
        known = section.fields(recipe)
        if p.name not in known:
            where = "train config" if p.section == "train" else f"{p.section} section"
            hint = f"; known: {', '.join(sorted(known))}" if known else f" (recipe {recipe.name} has no task settings)"
            raise TinyLMError(f"space {space.name}: unknown {where} key {p.name}{hint}")
        if section.apply is None:
            raise TinyLMError(f"space {space.name}: {section.note}")
    for p in space.params:
        for value in p.extremes():
            try:
                apply_params(recipe, {p.key: value})
            except TinyLMError as e:
                raise TinyLMError(f"space {space.name}: {p.key} = {value!r} makes a bad recipe: {e}") from None


def apply_params(recipe: Recipe, params: dict[str, Any]) -> Recipe:
    """The recipe with a trial's values applied (each section's values at once)."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, _, name = key.partition(".") if "." in key else ("train", "", key)
        by_section.setdefault(section, {})[name] = value
    for section, values in by_section.items():
        apply = SECTIONS[section].apply
        assert apply is not None  # check_space refused the others
        recipe = apply(recipe, values)
    return recipe


# -- one trial -----------------------------------------------------------------------------


@dataclass
class TrialData:
    """The data of a text or pairs recipe (a task recipe brings its own): what `tinylm train`'s
    --data or --pairs/--val-pairs would get."""

    text_files: list[Path] = field(default_factory=list)
    train_pairs: Path | None = None
    val_pairs: Path | None = None

    def check(self, recipe: Recipe, metric: str) -> None:
        given = bool(self.text_files) + bool(self.train_pairs)
        if recipe.task is not None:
            if given or self.val_pairs:
                raise TinyLMError(f"recipe {recipe.name} trains on the {recipe.task} task's own data; drop --data/--pairs")
        else:
            if given != 1:
                raise TinyLMError(f"recipe {recipe.name} needs data: --data FILE... or --pairs TRAIN.jsonl --val-pairs VAL.jsonl")
            if self.train_pairs and not self.val_pairs:
                raise TinyLMError("--pairs needs --val-pairs: trials are compared on their validation loss")
            if metric != "val_loss":
                raise TinyLMError(f"--metric {metric} needs a task recipe (e.g. code2-thesis); "
                                  f"recipe {recipe.name} has no task to evaluate")
        for path in [*self.text_files, *(p for p in (self.train_pairs, self.val_pairs) if p)]:
            if not Path(path).is_file():
                raise TinyLMError(f"data file not found: {path}")


class PruningCallback:
    """A Trainer callback: report each evaluation's val loss to the trial; stop a pruned trial."""

    def __init__(self, trial: Any, sign: float) -> None:
        self.trial, self.sign = trial, sign
        self.last: tuple[int, float] | None = None

    def __call__(self, trainer: Any, row: dict[str, Any]) -> None:
        import optuna

        if "val_loss" not in row:
            return
        self.last = (row["step"], row["val_loss"])
        self.trial.report(self.sign * row["val_loss"], row["step"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {row['step']} (val loss {row['val_loss']:.4f})")


def train_trial(recipe: Recipe, out_dir: Path, data: TrialData, callbacks: Sequence[Any], threads: int = 0):
    """One training run, as `tinylm train --recipe` makes it; returns its RunSummary."""
    if recipe.task is not None:
        from tinylm.tasks import get_plugin

        return get_plugin(recipe.task).train(recipe, out_dir, threads=threads, quiet=True, callbacks=callbacks)
    from tinylm.data import read_pairs
    from tinylm.training.run import DATA_FOLDER, Pairs, TextFiles, prepare_run, train_config

    cfg = train_config(recipe, out_dir, **({"num_threads": threads} if threads else {}))
    if data.train_pairs is not None:
        run_data: Pairs | TextFiles = Pairs(read_pairs(data.train_pairs), read_pairs(data.val_pairs))
    else:
        run_data = TextFiles([Path(p) for p in data.text_files], Path(out_dir) / DATA_FOLDER)
    run = prepare_run(recipe, cfg, run_data)
    result = run.trainer(callbacks=callbacks, quiet=True).fit()
    chosen = Path(result.out_dir) / ("best" if result.best_step is not None else "last")
    return run.summary(result, chosen)


def task_exact_match(model_dir: str | Path, limit: int, threads: int = 0) -> float:
    """Exact match of a task model on its task's validation split (first `limit` examples), greedy."""
    import torch

    import tinylm
    from tinylm.api import generation_config
    from tinylm.evaluation import evaluate, get_task

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        lm = tinylm.load(model_dir)
        task = get_task(None, model_extra=lm.model.config.extra)
        result = evaluate(lm, task, "valid", generation_config(temperature=0.0, max_new_tokens=512),
                          limit=limit, latency_examples=0)
    finally:
        torch.set_num_threads(before)
    return float(result.summary["metrics"]["exact_match"])


# -- the study -----------------------------------------------------------------------------


@dataclass
class TuneSettings:
    out_dir: str
    trials: int  # trials that count (complete or pruned) the study ends with, over all workers
    storage: str | None = None  # default: sqlite:///OUT/study.db
    study: str | None = None  # default: the recipe's name
    metric: str = "val_loss"
    budget_s: float = 0.0  # each trial's train.time_budget_s; 0 = the recipe's own
    eval_every: int | None = None  # each trial's train.eval_every (what the pruner sees); None = the recipe's own
    fixed: dict[str, Any] = field(default_factory=dict)  # settings every trial gets, keys as in a space ("task.n")
    eval_limit: int = 200  # validation examples for --metric exact_match
    seed: int | None = None  # the TPE sampler's; None = fresh per worker (workers must not all sample alike)
    pruner_startup: int = 5  # trials that finish before any is pruned (MedianPruner n_startup_trials)
    pruner_warmup_steps: int = 0  # training steps before a trial can be pruned
    threads: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise TinyLMError(f"--metric {self.metric!r} is not one of {', '.join(METRICS)}")
        for name in ("trials", "eval_limit"):
            if getattr(self, name) < 1:
                raise TinyLMError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("pruner_startup", "pruner_warmup_steps", "threads"):
            if getattr(self, name) < 0:
                raise TinyLMError(f"--{name.replace('_', '-')} must be >= 0")
        if not (self.budget_s >= 0 and math.isfinite(self.budget_s)):
            raise TinyLMError("--budget-s must be a number >= 0")
        if self.eval_every is not None and self.eval_every < 1:
            raise TinyLMError("--eval-every must be at least 1")

    def trial_train(self) -> dict[str, Any]:
        """The training settings every trial gets on top of the recipe's and the sampled ones."""
        return {**self.fixed, **({"time_budget_s": self.budget_s} if self.budget_s else {}),
                **({"eval_every": self.eval_every} if self.eval_every else {})}

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.out_dir) / STUDY_FILE).resolve()}"


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: the message about it comes from opening it
        return url


def database_url(url: str) -> str:
    """`url` with a PostgreSQL driver that is installed: SQLAlchemy 2.1 reads a bare
    postgresql:// as psycopg (3); tinylm's `tune` extra installs psycopg2."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme == "postgresql" and importlib.util.find_spec("psycopg") is None:
        return f"postgresql+psycopg2://{rest}"
    return url


def open_storage(url: str):
    """Optuna's RDB storage at `url`, with heartbeats; any failure is one line."""
    import optuna
    import sqlalchemy.exc

    url = database_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    last: Exception | None = None
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is "experimental"
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                  grace_period=HEARTBEAT_GRACE_S)
        except sqlalchemy.exc.OperationalError as e:  # unreachable, refused, bad password: no use retrying
            last = e
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            # Two workers creating the tables of a new database at once: the loser retries.
            last = e
            time.sleep(0.5 * (attempt + 1))
        except ImportError as e:  # Optuna's "Failed to import DB access module": name the missing driver
            missing = getattr(e.__cause__, "name", None) or "the database driver"
            raise TinyLMError(f"cannot use storage {redacted(url)}: {missing} is not installed "
                              f"(pip install psycopg2-binary for PostgreSQL)") from None
        except (sqlalchemy.exc.ArgumentError, ValueError) as e:
            raise TinyLMError(f"cannot use storage {redacted(url)}: {str(e).splitlines()[0]}") from None
    reason = str(getattr(last, "orig", None) or last).strip().splitlines()
    raise TinyLMError(f"cannot open storage {redacted(url)}: {reason[0] if reason else type(last).__name__}")


class _Surplus(Exception):
    """This worker's trial would go beyond the study's N trials (another worker took the last)."""


def trial_dir(out_dir: str | Path, number: int) -> Path:
    return Path(out_dir) / TRIALS_FOLDER / f"{number:04d}"


class Tuner:
    def __init__(self, recipe: Recipe, space: Space, settings: TuneSettings, data: TrialData | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.recipe, self.space, self.settings = recipe, space, settings
        self.data = data or TrialData()
        self.say = (lambda text: None) if settings.quiet else say
        self.data.check(recipe, settings.metric)
        check_space(space, recipe)
        if settings.fixed:
            check_space(Space("--set", tuple(Param(k, choices=(v,)) for k, v in settings.fixed.items())), recipe)
        apply_params(recipe, settings.trial_train())  # a bad budget fails here, not in every trial
        self.direction = METRICS[settings.metric]
        self.study: Any = None
        self.failures_in_a_row: list[str] = []

    # -- opening --

    def describe(self) -> dict[str, Any]:
        """What the study searches: every worker of a study must agree on it."""
        s = self.settings
        return {"recipe": self.recipe.to_dict(), "space": self.space.to_dict(), "metric": s.metric,
                "budget_s": s.budget_s, "eval_every": s.eval_every, "fixed": s.fixed,
                "eval_limit": s.eval_limit if s.metric == "exact_match" else None}

    def open(self) -> Any:
        """Open (or create) the study; nothing is left behind when the storage cannot be opened."""
        import optuna

        s = self.settings
        out = Path(s.out_dir)
        made_out = not out.exists()
        if s.storage is None:
            out.mkdir(parents=True, exist_ok=True)
        try:
            storage = open_storage(s.storage_url)
        except TinyLMError:
            if made_out and out.exists():
                import shutil

                shutil.rmtree(out)
            raise
        # The tuner prints its own lines; Optuna's warning for a failed trial carries a traceback.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        name = s.study or self.recipe.name
        sampler = optuna.samplers.TPESampler(seed=s.seed)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=s.pruner_startup, n_warmup_steps=s.pruner_warmup_steps)
        study = optuna.create_study(storage=storage, study_name=name, direction=self.direction, sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
        mine = json.loads(json.dumps(self.describe()))
        theirs = study.user_attrs.get(STUDY_ATTR)
        if theirs is None:
            study.set_user_attr(STUDY_ATTR, mine)
        elif theirs != mine:
            differ = [k for k in mine if mine[k] != theirs.get(k)]
            raise TinyLMError(f"study {name} in {redacted(s.storage_url)} searches with another {', '.join(differ)}; "
                              f"use the same recipe, space, metric, budget and evaluation, or another --study NAME")
        if study.direction.name.lower() != self.direction:
            raise TinyLMError(f"study {name} {study.direction.name.lower()}s; --metric {s.metric} needs {self.direction}")
        out.mkdir(parents=True, exist_ok=True)
        self.study = study
        return study

    def fail_dead_local_trials(self) -> list[int]:
        """Mark failed the RUNNING trials whose worker ran on this machine and is gone (killed),
        so a rerun need not wait for the heartbeat's grace period."""
        from optuna.trial import TrialState

        failed = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            host, pid = t.user_attrs.get("host"), t.user_attrs.get("pid")
            if host != socket.gethostname() or not isinstance(pid, int) or _alive(pid):
                continue
            storage = self.study._storage  # Optuna's storage API: the only way to end another process's trial
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "its worker was killed")  # a finished trial takes no attrs
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                folder = trial_dir(self.settings.out_dir, t.number)
                if folder.is_dir():
                    _write_trial_file(folder, t.number, "failed", t.params, error="its worker was killed")
                failed.append(t.number)
        return failed

    # -- running --

    def counted(self, below: int | None = None) -> int:
        """Trials that count or may still count: complete, pruned, running (numbers < `below`)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        return sum(1 for t in self.study.get_trials(deepcopy=False, states=states) if below is None or t.number < below)

    def objective(self, trial: Any) -> float:
        import optuna

        s = self.settings
        if self.counted(below=trial.number) >= s.trials:
            trial.set_user_attr("surplus", True)
            self.study.stop()
            raise _Surplus(f"the study already has {s.trials} trials")
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        params = {p.key: p.suggest(trial) for p in self.space.params}
        folder = trial_dir(s.out_dir, trial.number)
        trial.set_user_attr("folder", str(folder.resolve()))
        recipe = apply_params(self.recipe, {**params, **s.trial_train()})
        recipe = recipe.replace(name=f"{self.recipe.name}-trial-{trial.number:04d}")
        _write_trial_file(folder, trial.number, "running", params)
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        self.say(f"trial {trial.number}: {shown}")
        pruning = PruningCallback(trial, 1.0 if self.direction == "minimize" else -1.0)
        t0 = time.perf_counter()
        try:
            summary = train_trial(recipe, folder / "run", self.data, [pruning], s.threads)
            if summary.stop_reason == "interrupted":  # Ctrl-C: the Trainer saved and returned; the study stops
                raise KeyboardInterrupt
            if s.metric == "val_loss":
                if summary.best_val_loss is None:
                    raise TinyLMError("the run made no validation loss (no validation data?)")
                value = float(summary.best_val_loss)
            else:
                value = task_exact_match(summary.model_dir, s.eval_limit, s.threads)
        except optuna.TrialPruned as e:
            step, loss = pruning.last or (None, None)
            _write_trial_file(folder, trial.number, "pruned", params, pruned_at_step=step, val_loss=loss,
                              seconds=time.perf_counter() - t0)
            self.say(f"trial {trial.number}: {e}")
            raise
        except BaseException as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            trial.set_user_attr("fail_reason", why)
            _write_trial_file(folder, trial.number, "failed", params, error=why, seconds=time.perf_counter() - t0)
            self.say(f"trial {trial.number}: failed: {why}")
            raise
        _write_trial_file(folder, trial.number, "complete", params, value=value, metric=s.metric,
                          model_dir=str(summary.model_dir), seconds=time.perf_counter() - t0)
        self.say(f"trial {trial.number}: {s.metric} {value:.4f} ({time.perf_counter() - t0:.1f}s)")
        return value

    def _after_trial(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        if trial.state == TrialState.FAIL and "surplus" not in trial.user_attrs:
            self.failures_in_a_row.append(trial.user_attrs.get("fail_reason", "?"))
        else:
            self.failures_in_a_row.clear()
        if self.counted() >= self.settings.trials or len(self.failures_in_a_row) >= MAX_FAILURES_IN_A_ROW:
            study.stop()

    def run(self) -> dict[str, Any]:
        """Open the study, run trials until it holds N that count, write the outputs; returns the summary."""
        study = self.study or self.open()
        failed = self.fail_dead_local_trials()
        if failed:
            self.say(f"marked failed: trial(s) {', '.join(map(str, failed))} (their worker was killed)")
        if self.counted() < self.settings.trials:
            # A training error (diverged, bad settings of one trial) fails that trial, not the study.
            study.optimize(self.objective, callbacks=[self._after_trial], catch=(TinyLMError, _Surplus),
                           gc_after_trial=True)
            if len(self.failures_in_a_row) >= MAX_FAILURES_IN_A_ROW:
                raise TinyLMError(f"{MAX_FAILURES_IN_A_ROW} trials in a row failed, stopping; the last: "
                                  f"{self.failures_in_a_row[-1]}")
        else:
            self.say(f"study {study.study_name} already has {self.settings.trials} trials (complete, pruned or running)")
        return self.write_outputs()

    # -- outputs --

    def write_outputs(self) -> dict[str, Any]:
        """Plots, the best recipe, the summary (DIR/tune_summary.json); prints the table."""
        from optuna.trial import TrialState

        out = Path(self.settings.out_dir)
        trials = self.study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        notes = write_plots(self.study, out, len(complete))
        best = None
        if complete:
            b = self.study.best_trial
            recipe = apply_params(self.recipe, b.params).replace(
                name=f"{self.recipe.name}-tuned",
                description=f"{self.recipe.name} with the best of study {self.study.study_name} "
                            f"(trial {b.number}, {self.settings.metric} {b.value:.4f})")
            write_json(out / BEST_RECIPE_FILE, recipe.to_dict())
            best = {"number": b.number, "value": b.value, "params": b.params, "recipe": str(out / BEST_RECIPE_FILE)}
        rows = [_row(t) for t in trials]
        counts = {state: sum(1 for r in rows if r["state"] == state) for state in ("complete", "pruned", "fail", "running")}
        summary = {"study": self.study.study_name, "storage": redacted(self.settings.storage_url),
                   "metric": self.settings.metric, "direction": self.direction, "counts": counts,
                   "best": best, "notes": notes, "trials": rows}
        write_json(out / SUMMARY_FILE, summary)
        self.say(table(summary))
        return summary


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _write_trial_file(folder: Path, number: int, state: str, params: dict[str, Any], **extra: Any) -> None:
    write_json(folder / TRIAL_FILE, {"number": number, "state": state, "params": params, **extra})


def _row(t: Any) -> dict[str, Any]:
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
    return {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
            "seconds": seconds, "pruned_at_step": t.last_step if t.state.name == "PRUNED" else None,
            "note": t.user_attrs.get("fail_reason")}


def table(summary: dict[str, Any]) -> str:
    """The study as a Markdown table, best trial marked."""
    rows = summary["trials"]
    keys = sorted({k for r in rows for k in r["params"]})
    best = summary["best"]["number"] if summary["best"] else None
    head = ["trial", "state", summary["metric"], "s", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        state = r["state"] + (f" @{r['pruned_at_step']}" if r["pruned_at_step"] is not None else "")
        cells = [f"{r['number']}{' *' if r['number'] == best else ''}", state,
                 "" if r["value"] is None else f"{r['value']:.4f}",
                 "" if r["seconds"] is None else f"{r['seconds']:.0f}",
                 *(_fmt(r["params"][k]) if k in r["params"] else "" for k in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    c = summary["counts"]
    tail = (f"study {summary['study']} ({summary['storage']}): {c['complete']} complete, {c['pruned']} pruned, "
            f"{c['fail']} failed, {c['running']} running")
    if summary["best"]:
        tail += f"; best: trial {best}, {summary['metric']} {summary['best']['value']:.4f} -> {summary['best']['recipe']}"
    return "\n".join([*lines, tail, *summary["notes"]])


def write_plots(study: Any, out: Path, n_complete: int) -> list[str]:
    """The optimisation history and parameter importance PNGs (Optuna's matplotlib plots);
    returns notes on what could not be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    notes = []
    plots: list[tuple[str, Callable[[], Any]]] = []
    if n_complete >= 1:
        plots.append((HISTORY_PLOT, lambda: ovm.plot_optimization_history(study)))
    else:
        notes.append("no completed trial yet: no optimisation history plot")
    if n_complete >= 2:
        plots.append((IMPORTANCE_PLOT, lambda: ovm.plot_param_importances(study)))
    else:
        notes.append(f"parameter importance needs at least 2 completed trials ({n_complete} so far): no importance plot")
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = plot()
        except (ValueError, RuntimeError) as e:  # e.g. importance when every completed trial has the same params
            notes.append(f"{name}: not drawn ({str(e).splitlines()[0]})")
            continue
        figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        with atomic_write(out / name, "wb") as f:
            f.write(buffer.getvalue())
    return notes


def tune(recipe: Recipe, space: Space, settings: TuneSettings, data: TrialData | None = None) -> dict[str, Any]:
    """Run a study (see the module docstring); returns the summary written to DIR/tune_summary.json."""
    return Tuner(recipe, space, settings, data, say=lambda text: print(text, file=sys.stdout, flush=True)).run()

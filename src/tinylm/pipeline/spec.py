"""The pipeline file: a TOML description of an experiment, read and validated in one go.

    [pipeline]
    name = "demo"
    threads = 1                       # torch threads for every stage (part of each key)

    [vars]                            # values stages refer to as "${name}"
    steps = 2000

    [budgets.quick]                   # `--budget quick` overrides vars for a short run
    steps = 20

    [stages.data]
    kind = "gen-data"
    preset = "thesis"                 # every other key is a parameter of the kind
    n = 2000

    [stages.train]
    kind = "train"
    task = "code2"
    inputs = { data = "@data" }       # "@STAGE" or "@STAGE/PATH": another stage's output;
    max_steps = "${steps}"            # anything else: a file or folder, relative to this file

Everything a run could trip over later is checked here, before any stage starts: unknown
kinds and parameters, parameter types, references to stages that do not exist or to files
a stage does not produce, external inputs that are missing, and cycles. Each is one
`TinyLMError` line (the CLI exits 2).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinylm.errors import TinyLMError

RESERVED = ("kind", "inputs", "outputs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Ref:
    """One input: another stage's output (`stage` set, `path` inside its folder, "" for all
    of it) or an external file or folder (`stage` None, `path` absolute)."""

    stage: str | None
    path: str

    def __str__(self) -> str:
        if self.stage is None:
            return self.path
        return f"@{self.stage}/{self.path}" if self.path else f"@{self.stage}"


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    params: dict[str, Any]
    inputs: dict[str, Ref]
    outputs: tuple[str, ...]  # files the stage must produce (its kind's, plus any declared)
    threads: int

    def upstream(self) -> list[str]:
        return sorted({r.stage for r in self.inputs.values() if r.stage is not None})


@dataclass(frozen=True)
class Pipeline:
    path: Path
    name: str
    description: str
    threads: int
    vars: dict[str, Any]
    stages: list[Stage]  # in an order that runs every stage after its inputs


def _substitute(value: Any, vars: dict[str, Any], where: str) -> Any:
    """Replace "${name}" with the variable: the value itself (any type) when it is the whole
    string, its text when it is part of one; lists and tables are walked."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        for name in _VAR.findall(value):
            if name not in vars:
                raise TinyLMError(f"{where}: unknown variable ${{{name}}} (defined: {', '.join(vars) or 'none'})")
        if whole:
            return vars[whole.group(1)]
        return _VAR.sub(lambda m: str(vars[m.group(1)]), value)
    if isinstance(value, list):
        return [_substitute(v, vars, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, vars, where) for k, v in value.items()}
    return value


def parse_value(text: str) -> Any:
    """A --set value: TOML's reading of it when it is a TOML value (20, 0.5, true, "x"), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _vars(doc: dict[str, Any], budget: str | None, overrides: dict[str, str]) -> dict[str, Any]:
    vars = dict(doc.get("vars", {}))
    budgets = doc.get("budgets", {})
    if not isinstance(vars, dict) or not isinstance(budgets, dict):
        raise TinyLMError("[vars] and [budgets.NAME] must be tables")
    if budget is not None:
        if budget not in budgets:
            raise TinyLMError(f"unknown budget {budget!r} (this file has: {', '.join(budgets) or 'none'})")
        for key, value in budgets[budget].items():
            if key not in vars:
                raise TinyLMError(f"budget {budget!r} sets {key!r}, which is not in [vars]")
            vars[key] = value
    for key, text in overrides.items():
        if key not in vars:
            raise TinyLMError(f"--set {key}: no such variable (defined: {', '.join(vars) or 'none'})")
        vars[key] = parse_value(text)
    return vars


def _ref(text: Any, base: Path, where: str) -> Ref:
    if not isinstance(text, str) or not text:
        raise TinyLMError(f"{where}: an input is a string (\"@stage/path\" or a file path), got {text!r}")
    if text.startswith("@"):
        stage, _, sub = text[1:].partition("/")
        sub = sub.strip("/")
        if ".." in Path(sub).parts:
            raise TinyLMError(f"{where}: {text!r} leaves the stage's folder")
        return Ref(stage, sub)
    path = (base / text).resolve()
    if not path.exists():
        raise TinyLMError(f"{where}: missing input {path}")
    return Ref(None, str(path))


def _order(stages: dict[str, Stage]) -> list[Stage]:
    """File order, except that a stage waits for its inputs; a cycle is named."""
    done: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise TinyLMError(f"cycle between stages: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for up in stages[name].upstream():
            visit(up, path + [name])
        state[name] = "done"
        done.append(name)

    for name in stages:
        visit(name, [])
    return [stages[n] for n in done]


def load_pipeline(path: str | Path, *, budget: str | None = None,
                  overrides: dict[str, str] | None = None) -> Pipeline:
    from tinylm.pipeline.kinds import get_kind

    path = Path(path).resolve()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TinyLMError(f"pipeline file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TinyLMError(f"{path} is not valid TOML: {e}") from None
    unknown = set(doc) - {"pipeline", "vars", "budgets", "stages"}
    if unknown:
        raise TinyLMError(f"{path.name}: unknown table(s) {', '.join(sorted(unknown))} "
                          "(expected [pipeline], [vars], [budgets.NAME], [stages.NAME])")
    head = doc.get("pipeline", {})
    extra = set(head) - {"name", "description", "threads"}
    if extra:
        raise TinyLMError(f"[pipeline]: unknown key(s) {', '.join(sorted(extra))} (name, description, threads)")
    vars = _vars(doc, budget, overrides or {})
    threads = _substitute(head.get("threads", 1), vars, "[pipeline] threads")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise TinyLMError(f"[pipeline] threads must be an integer >= 1, got {threads!r}")
    tables = doc.get("stages", {})
    if not tables:
        raise TinyLMError(f"{path.name} has no [stages.NAME] tables")

    stages: dict[str, Stage] = {}
    for name, table in tables.items():
        where = f"stage {name!r}"
        if not _NAME.match(name):
            raise TinyLMError(f"{where}: a stage name is letters, digits, '-' and '_'")
        if not isinstance(table, dict) or "kind" not in table:
            raise TinyLMError(f"{where}: needs kind = \"...\"")
        kind = get_kind(table["kind"], where)
        raw_inputs = table.get("inputs", {})
        if not isinstance(raw_inputs, dict):
            raise TinyLMError(f"{where}: inputs is a table, e.g. inputs = {{ data = \"@data\" }}")
        inputs = {k: _ref(_substitute(v, vars, where), path.parent, f"{where} input {k!r}")
                  for k, v in raw_inputs.items()}
        declared = table.get("outputs", [])
        if not isinstance(declared, list) or not all(isinstance(o, str) and o for o in declared):
            raise TinyLMError(f"{where}: outputs is a list of file names")
        params = _substitute({k: v for k, v in table.items() if k not in RESERVED}, vars, where)
        stage_threads = params.pop("threads", threads)
        if not isinstance(stage_threads, int) or isinstance(stage_threads, bool) or stage_threads < 1:
            raise TinyLMError(f"{where}: threads must be an integer >= 1")
        params = kind.check(params, inputs, where)
        outputs = tuple(dict.fromkeys([*kind.produces(params), *declared]))
        stages[name] = Stage(name, kind.name, params, inputs, outputs, stage_threads)

    for stage in stages.values():
        for key, ref in stage.inputs.items():
            if ref.stage is None:
                continue
            where = f"stage {stage.name!r} input {key!r}"
            if ref.stage not in stages:
                raise TinyLMError(f"{where}: no stage named {ref.stage!r}")
            up = stages[ref.stage]
            # Only kinds that know their files can be checked now; the rest are checked when the
            # upstream stage has run (the runner raises the same one-line error then).
            if ref.path and up.outputs and up.kind in ("shell", "gen-data", "tokenizer") and not any(
                    ref.path == o or o.startswith(ref.path + "/") for o in up.outputs):
                raise TinyLMError(f"{where}: missing input {ref} (stage {up.name!r} produces: "
                                  f"{', '.join(up.outputs)})")
    description = head.get("description", "")
    return Pipeline(path, str(head.get("name", path.stem)), str(description), threads, vars, _order(stages))

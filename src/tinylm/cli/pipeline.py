"""`tinylm pipeline run|check FILE.toml [--out DIR]`: reproducible experiments (docs/pipelines.md).

    tinylm pipeline run pipelines/code2-thesis.toml --out runs/pipe-code2
    tinylm pipeline run pipelines/code2-thesis.toml --budget quick --out runs/pipe-quick
    tinylm pipeline run pipelines/code2-thesis.toml --set train_steps=400      # one variable
    tinylm pipeline check pipelines/code2-thesis.toml --budget quick --out runs/pipe-quick

run: every stage whose key (kind, parameters, inputs' hashes, tinylm version) is unchanged
and whose outputs are intact is skipped; the rest run, each in its own process, and are
recorded in DIR/manifest.json. check: reruns every stage into a fresh folder and says which
outputs are bit-identical to DIR's and why the others are not (DIR/check.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinylm.errors import TinyLMError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pipeline", help="run or check a reproducible pipeline (a TOML file of stages)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND", required=True)
    for name, helptext in (("run", "run the stages that are not up to date"),
                           ("check", "rerun every stage in a fresh folder and compare hashes with DIR's manifest"),
                           ("kinds", "list the stage kinds and their parameters")):
        q = sub.add_parser(name, help=helptext)
        if name == "kinds":
            q.set_defaults(func=_kinds)
            continue
        q.add_argument("file", metavar="FILE.toml")
        q.add_argument("--out", metavar="DIR", help="output folder (default runs/pipeline-<name>)")
        q.add_argument("--budget", metavar="NAME", help="a [budgets.NAME] table of the file (e.g. quick)")
        q.add_argument("--set", dest="overrides", action="append", default=[], metavar="VAR=VALUE",
                       help="set a [vars] variable (repeatable)")
        if name == "check":
            q.add_argument("--fresh", metavar="DIR", help="folder for the rerun (default: a new one beside --out)")
        q.set_defaults(func=_run if name == "run" else _check)


def _load(args: argparse.Namespace):
    from tinylm.pipeline import load_pipeline

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TinyLMError(f"--set takes VAR=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    pipe = load_pipeline(args.file, budget=args.budget, overrides=overrides)
    out = Path(args.out) if args.out else Path("runs") / f"pipeline-{pipe.name}"
    return pipe, out


def _run(args: argparse.Namespace) -> int:
    from tinylm.pipeline.runner import run_pipeline

    pipe, out = _load(args)
    run_pipeline(pipe, out, echo=lambda s: print(s, flush=True))
    print(f"manifest: {out / 'manifest.json'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from tinylm.pipeline.runner import check_pipeline

    pipe, out = _load(args)
    result = check_pipeline(pipe, out, args.fresh, echo=lambda s: print(s, flush=True))
    # Exit 1 when some output differs for a reason outside the documented timing rule.
    return 1 if result["counts"]["differs"] or result["counts"]["missing"] else 0


def _kinds(args: argparse.Namespace) -> int:
    from tinylm.pipeline.kinds import KINDS

    for kind in KINDS.values():
        params = ", ".join(kind.params) or "-"
        inputs = "any" if kind.any_inputs else (", ".join(f"{k}{'' if r else '?'}" for k, r in kind.inputs.items())
                                                or "-")
        print(f"{kind.name:10} {kind.help}\n{'':10} parameters: {params}, threads; inputs: {inputs}")
    return 0

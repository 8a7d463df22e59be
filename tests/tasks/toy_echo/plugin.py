"""A task that exists only in the tests: it shows what a plug-in supplies and that the library
picks it up (recipes, training through the shared run set-up, CLI verb, route, prompt format)
without one line of the library naming it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinylm.tasks.registry import TaskPlugin


@dataclass
class EchoSettings:
    n: int = 40  # examples


def _pairs(n: int) -> list[dict[str, str]]:
    return [{"input": f"say {w}", "output": w} for w in ("ab", "ba", "aab", "bba")] * (n // 4)


def train(recipe: Any, out_dir: Any, *, threads: int = 0, quiet: bool = False, data: Any = None,
          callbacks: Any = ()) -> Any:
    from tinylm.training.run import Pairs, prepare_run, train_config

    cfg = train_config(recipe, out_dir, **({"num_threads": threads} if threads else {}))
    pairs = _pairs(recipe.settings.n)
    run = prepare_run(recipe, cfg, Pairs(pairs, pairs[:8]), task_extra={"task": "echo"})
    result = run.trainer(callbacks=callbacks, quiet=quiet).fit()
    return run.summary(result, f"{out_dir}/last")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("echo", help="the toy task")
    p.set_defaults(func=lambda args: print("echo verb") or 0)


def routes(app: Any, server: Any) -> None:
    @app.get("/v1/echo/ping")
    async def ping() -> dict[str, str]:
        return {"model": server.model_name}


PLUGIN = TaskPlugin(
    name="echo", description="repeat a word", prompt_format="paired", settings=EchoSettings,
    recipes={"echo-tiny": dict(preset="llama-style-nano", tokenizer="char",
                               model={"n_layer": 1, "n_embd": 16, "n_head": 2, "n_kv_head": None, "block_size": 16},
                               train={"max_steps": 2, "batch_size": 4, "eval_every": 0, "tensorboard": False})},
    train=train, cli=register, routes=routes,
)

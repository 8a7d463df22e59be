"""`tinylm chat CKPT`: an interactive prompt loop with history and settings you change as you go.

Each turn continues a running transcript (your text, then the model's), trimmed from the
front to fit the model's context, so the model sees the conversation so far. A line
ending in a backslash continues on the next line; a line of three double quotes starts a
block that ends at the next such line. Commands:

  /set NAME VALUE   temperature, top_k, top_p, min_p, max_tokens, seed (or "off"),
                    repetition_penalty, presence_penalty, frequency_penalty
  /stop TEXT|off    add a stop string (\\n for a newline), or clear them
  /grammar NAME|off constrain the output (a built-in grammar or a .gbnf file)
  /settings         show the settings       /reset   forget the transcript
  /history          show the transcript     /help    this text      /quit (or Ctrl-D)

CKPT may be a folder holding several checkpoints (e.g. full precision and compressed,
best and last): you pick one at the start, or name it with --variant.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tinylm.cli.common import add_sampling_args, sampling_settings
from tinylm.errors import TinyLMError

SETTINGS = {  # /set name -> (GenerationConfig field, type)
    "temperature": ("temperature", float), "top_k": ("top_k", int), "top_p": ("top_p", float),
    "min_p": ("min_p", float), "max_tokens": ("max_new_tokens", int), "seed": ("seed", int),
    "repetition_penalty": ("repetition_penalty", float), "presence_penalty": ("presence_penalty", float),
    "frequency_penalty": ("frequency_penalty", float),
}
BLOCK = '"""'


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("chat", help="talk to a checkpoint in the terminal", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint folder, or a folder of several (you choose one)")
    p.add_argument("--variant", default=None, help="which checkpoint inside CKPT (its path relative to CKPT)")
    add_sampling_args(p)
    p.set_defaults(func=run)


def find_variants(path: Path) -> list[Path]:
    """Checkpoint folders at `path` itself, or one or two levels below it."""
    def is_checkpoint(p: Path) -> bool:
        return (p / "config.json").is_file() and (p / "tokenizer.json").is_file()

    if not path.is_dir():
        raise TinyLMError(f"checkpoint folder not found: {path}")
    if is_checkpoint(path):
        return [path]
    found = sorted(p for p in [*path.glob("*"), *path.glob("*/*")] if p.is_dir() and is_checkpoint(p))
    if not found:
        raise TinyLMError(f"{path} holds no checkpoint (a folder with config.json and tokenizer.json)")
    return found


def choose_variant(root: Path, variants: list[Path], name: str | None, read=input) -> Path:
    names = [str(v.relative_to(root)) if v != root else "." for v in variants]
    if name is not None:
        if name not in names:
            raise TinyLMError(f"--variant {name!r} is not in {root}; choose one of: {', '.join(names)}")
        return variants[names.index(name)]
    if len(variants) == 1:
        return variants[0]
    print(f"{root} holds {len(variants)} checkpoints:")
    for i, n in enumerate(names, 1):
        print(f"  {i}. {n}")
    while True:
        try:
            answer = read(f"which one [1-{len(variants)}]? ").strip()
        except EOFError:
            raise TinyLMError("no checkpoint chosen") from None
        if answer.isdigit() and 1 <= int(answer) <= len(variants):
            return variants[int(answer) - 1]
        if answer in names:
            return variants[names.index(answer)]
        print(f"  type a number from 1 to {len(variants)}")


def run(args: argparse.Namespace) -> int:
    import tinylm

    root = Path(args.checkpoint)
    path = choose_variant(root, find_variants(root), args.variant)
    lm = tinylm.load(path)
    settings = sampling_settings(args)
    if settings.pop("num_beams") != 1:
        raise TinyLMError("chat streams its answers: --num-beams must be 1")
    Chat(lm, settings).loop()
    return 0


class Chat:
    def __init__(self, lm: Any, settings: dict[str, Any], out=sys.stdout) -> None:
        from tinylm.api import generation_config

        generation_config(**settings)  # a bad flag fails now, not at the first prompt
        self.lm, self.settings, self.out = lm, settings, out
        self.transcript = ""
        self.grammar: str | None = None
        self.processor = None

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def loop(self) -> None:
        try:
            import readline  # noqa: F401 - line editing and up-arrow history on Linux terminals
        except ImportError:
            pass
        info = self.lm.info()
        self.say(f"tinylm chat: {info['path']} ({info['parameters']:,} parameters, context "
                 f"{info['config']['block_size']} tokens). /help for commands, /quit to leave.")
        while True:
            text = self.read()
            if text is None or text.strip() in ("/quit", "/exit"):
                return
            if text.startswith("/"):
                try:
                    self.command(text.strip())
                except TinyLMError as e:
                    self.say(f"error: {e}")
            elif text:
                try:
                    self.turn(text)
                except TinyLMError as e:
                    self.say(f"error: {e}")

    def read(self) -> str | None:
        """One input: a line, backslash-continued lines, or a triple-quoted block; None at end of input."""
        try:
            line = input("> ")
            if line.strip() == BLOCK:
                lines = []
                while (line := input("... ")).strip() != BLOCK:
                    lines.append(line)
                return "\n".join(lines)
            lines = []
            while line.endswith("\\"):
                lines.append(line[:-1])
                line = input("... ")
            return "\n".join([*lines, line])
        except EOFError:
            self.say()
            return None

    def command(self, text: str) -> None:
        name, _, rest = text[1:].partition(" ")
        rest = rest.strip()
        if name == "help":
            self.say(__doc__.split("\n\n")[2].rstrip())
        elif name == "set":
            parts = rest.split(None, 1)
            if len(parts) == 2:
                self.set(*parts)
            else:
                self.say("usage: /set NAME VALUE")
        elif name == "settings":
            shown = {k: self.settings[field] for k, (field, _) in SETTINGS.items()}
            shown["stop"] = list(self.settings["stop_strings"])
            shown["grammar"] = self.grammar or "off"
            self.say("  ".join(f"{k}={v}" for k, v in shown.items()))
        elif name == "stop":
            if rest in ("", "off"):
                self.settings["stop_strings"] = ()
            else:
                self.settings["stop_strings"] += (rest.replace("\\n", "\n").replace("\\t", "\t"),)
            self.say(f"stop strings: {list(self.settings['stop_strings'])}")
        elif name == "grammar":
            self.set_grammar(rest)
        elif name == "reset":
            self.transcript = ""
            self.say("(transcript cleared)")
        elif name == "history":
            self.say(self.transcript or "(empty)")
        else:
            self.say(f"unknown command /{name}; /help lists them")

    def set(self, name: str, value: str) -> None:
        from tinylm.api import generation_config

        if name not in SETTINGS:
            raise TinyLMError(f"unknown setting {name!r}; choose one of: {', '.join(SETTINGS)}")
        field, kind = SETTINGS[name]
        if name == "seed" and value == "off":
            parsed = None
        else:
            try:
                parsed = kind(value)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise TinyLMError(f"{name} must be {what}, got {value!r}") from None
        trial = {**self.settings, field: parsed}
        generation_config(**trial)  # validated before it replaces the current settings
        self.settings = trial
        self.say(f"{name} = {parsed}")

    def set_grammar(self, spec: str) -> None:
        if spec in ("", "off"):
            self.grammar, self.processor = None, None
            self.say("grammar off")
            return
        try:
            from tinylm.constrain import constrain
        except ImportError as e:
            raise TinyLMError(f"grammars are not available here ({e})") from None
        self.processor = constrain(self.lm, grammar=spec)
        self.grammar = spec
        self.say(f"grammar: {spec}")

    def prompt_ids(self, text: str) -> list[int]:
        """The transcript plus the new text, cut from the front to leave room for the answer."""
        joined = self.transcript + ("\n" if self.transcript and not self.transcript.endswith("\n") else "") + text
        self.transcript = joined
        ids = self.lm.encode_prompts([joined])[0]
        context = self.lm.model.config.block_size
        room = max(1, context - min(self.settings["max_new_tokens"], context - 1))
        return ids[-room:]

    def turn(self, text: str) -> None:
        from tinylm.api import generation_config

        ids = self.prompt_ids(text)
        config = generation_config(**self.settings)
        started = time.perf_counter()
        first = None
        tokens = 0
        pieces = []
        for event in self.lm.engine.stream(ids, config, self.processor):
            if first is None:
                first = time.perf_counter()
            tokens += event.token_id is not None
            pieces.append(event.text)
            self.out.write(event.text)
            self.out.flush()
        elapsed = time.perf_counter() - started
        self.transcript += "".join(pieces)
        ttft = (first - started) * 1000 if first else 0.0
        self.say()
        self.say(f"[{tokens} tokens · first token {ttft:.0f} ms · {tokens / max(elapsed, 1e-9):.1f} tokens/s · "
                 f"{elapsed:.2f} s]")

"""`tinylm generate --grammar/--regex/--json-schema` in-process: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest

from constrain_models import random_lm
from tinylm.checkpoint import save_checkpoint
from tinylm.cli.main import main
from tinylm.constrain import Grammar, builtin


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, char_tokenizer):
    path = tmp_path_factory.mktemp("ckpt")
    lm = random_lm(char_tokenizer, seed=4)
    save_checkpoint(path, lm.model, char_tokenizer)
    return path


def generate(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["generate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("stream", [True, False])
def test_grammar_by_name(checkpoint, capsys, stream):
    argv = [str(checkpoint), "--grammar", "arithmetic", "--temperature", "1.0", "--seed", "3", "--max-new-tokens", "120"]
    code, out, err = generate(capsys, *argv, *([] if stream else ["--no-stream"]))
    assert code == 0, err
    text = out.rstrip("\n")  # the prompt is empty: stdout is the completion
    if "finish_reason" in err:
        assert builtin("arithmetic").is_prefix(text)
    else:
        assert builtin("arithmetic").accepts(text)


def test_grammar_file_regex_and_json_schema(checkpoint, capsys, tmp_path):
    gbnf = tmp_path / "yesno.gbnf"
    gbnf.write_text('root ::= ("yes" | "no") "!"\n')
    code, out, err = generate(capsys, str(checkpoint), "--grammar", str(gbnf), "--seed", "1")
    assert code == 0 and out in ("yes!\n", "no!\n"), err
    code, out, err = generate(capsys, str(checkpoint), "--regex", "[0-9]{3}-[a-c]{2}", "--seed", "2")
    assert code == 0 and Grammar.regex("[0-9]{3}-[a-c]{2}").accepts(out.rstrip("\n")), err
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}))
    code, out, err = generate(capsys, str(checkpoint), "--json-schema", str(schema), "--seed", "3", "--num-beams", "2")
    assert code == 0 and json.loads(out) in ({"ok": True}, {"ok": False}), err


def test_invalid_grammar_is_one_line_with_position(checkpoint, capsys, tmp_path):
    bad = tmp_path / "bad.gbnf"
    bad.write_text('root ::= "a" expr\n')
    code, out, err = generate(capsys, str(checkpoint), "--grammar", str(bad))
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"tinylm: error: invalid grammar {bad}: EBNF parser error at line 1, column 14")
    code, _, err = generate(capsys, str(checkpoint), "--regex", "(ab")
    assert code == 2 and err.startswith("tinylm: error: invalid regex: Regex parsing error at position") and err.count("\n") == 1
    code, _, err = generate(capsys, str(checkpoint), "--grammar", "nope")
    assert code == 2 and "neither a built-in grammar" in err


def test_grammar_flags_are_exclusive(checkpoint, capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", str(checkpoint), "--grammar", "json", "--regex", "a"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err

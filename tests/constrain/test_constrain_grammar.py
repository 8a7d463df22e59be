"""Grammar values: the three kinds, the built-ins, and one-line errors with position and reason."""

from __future__ import annotations

import json

import pytest

from tinylm.constrain import BUILTIN_GRAMMARS, Grammar, builtin, to_grammar
from tinylm.errors import TinyLMError


@pytest.mark.parametrize(
    "source, where",
    [
        ('root ::= "a" )', "line 1, column 14"),
        ('root ::= "a" |', "line 1, column 15"),
        ('root ::= x\nx ::= "a" y', "line 2, column 11"),
        ("root ::= [a-", "line 1, column 13"),
        ('start ::= "a"', "line 1, column 1"),
    ],
)
def test_invalid_ebnf_is_one_line_with_position(source, where):
    with pytest.raises(TinyLMError) as e:
        Grammar.ebnf(source, "bad.gbnf")
    message = str(e.value)
    assert "\n" not in message and message.startswith("invalid grammar bad.gbnf: EBNF ")
    assert where in message
    assert "/project/cpp" not in message and "[" not in message.split(":")[0]


def test_invalid_ebnf_names_the_undefined_rule():
    with pytest.raises(TinyLMError, match='Rule "y" is not defined'):
        Grammar.ebnf('root ::= "a" y')


def test_invalid_regex_has_position():
    with pytest.raises(TinyLMError, match=r"^invalid regex: Regex parsing error at position 3: .*Lookbehind"):
        Grammar.regex("(?<=a)b")


def test_invalid_json_schema_text_has_line_and_column(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text('{"type": "object",\n "properties": {"a" {"type": "integer"}}}')
    with pytest.raises(TinyLMError, match=r"invalid JSON schema .*schema.json: not JSON \(.* at line 2, column 21\)"):
        Grammar.json_schema(path)


def test_unsupported_json_schema_says_why():
    with pytest.raises(TinyLMError, match='invalid JSON schema: Unsupported type "foo"'):
        Grammar.json_schema({"type": "foo"})


def test_kinds_accept_exactly_their_language():
    ebnf = Grammar.ebnf('root ::= "ab" [0-9]+')
    assert ebnf.accepts("ab12") and not ebnf.accepts("ab") and not ebnf.accepts("ab1x")
    assert ebnf.is_prefix("ab") and not ebnf.is_prefix("b")
    regex = Grammar.regex(r"[a-c]{2}-\d+")
    assert regex.accepts("ab-7") and not regex.accepts("ad-7") and not regex.accepts("ab-")
    schema = Grammar.json_schema({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    assert schema.accepts('{"n": 3}')
    assert not schema.accepts('{"n":3}')  # compact json.dumps style only: ", " and ": "
    assert not schema.accepts('{"n": 3, "m": 1}')  # strict: no properties the schema does not name


def test_pydantic_model_and_dict_give_the_same_grammar():
    pydantic = pytest.importorskip("pydantic")

    class Person(pydantic.BaseModel):
        name: str
        age: int

    from_model = Grammar.json_schema(Person)
    from_dict = Grammar.json_schema(Person.model_json_schema())
    assert from_model.key == from_dict.key
    assert from_model.accepts(json.dumps({"name": "Ada", "age": 36}))
    assert not from_model.accepts(json.dumps({"age": 36, "name": "Ada"}))  # schema order


def test_builtins_resolve_and_parse():
    assert set(BUILTIN_GRAMMARS) == {"code2-thesis", "code2-full", "arithmetic", "json"}
    for name in BUILTIN_GRAMMARS:
        g = Grammar.resolve(name)
        assert g is builtin(name) and g.name == name
    assert builtin("arithmetic").accepts("(9*15)==(9*10+9*5)==(135*1)")
    assert builtin("code2-thesis").accepts("LD rF,[rD+H'08'] ; rD = 0000\nADDS rD,r1,r2")
    assert builtin("code2-full").accepts("loop:\nLLI r1,H'2A' ; count\nBZ")
    assert builtin("json").accepts('{"a": [1, 2.5, "x", null, true]}')


def test_resolve_reads_files_and_refuses_unknown_names(tmp_path):
    path = tmp_path / "digits.gbnf"
    path.write_text('root ::= [0-9]+ "!"\n')
    g = Grammar.resolve(str(path))
    assert g.kind == "ebnf" and g.name == str(path) and g.accepts("42!")
    with pytest.raises(TinyLMError, match="neither a built-in grammar .*code2-full.* nor a file"):
        Grammar.resolve("no-such-grammar")
    with pytest.raises(TinyLMError, match="grammar file not found"):
        Grammar.from_file(tmp_path / "missing.gbnf")


def test_to_grammar_wants_exactly_one_source():
    with pytest.raises(TinyLMError, match="exactly one of grammar, regex, json_schema"):
        to_grammar()
    with pytest.raises(TinyLMError, match="exactly one"):
        to_grammar("json", regex="a")
    assert to_grammar(regex="a+").kind == "regex"
    assert to_grammar(json_schema={"type": "integer"}).accepts("12")


def test_length_limited_json_strings_refuse_raw_control_characters():
    """XGrammar 0.2.8's class for minLength/maxLength strings lets \\x00-\\x1f through; ours does not."""
    g = Grammar.json_schema({"type": "string", "maxLength": 3})
    assert g.accepts('"ab"') and g.accepts('"é"')
    assert not g.accepts('"a\x07"') and not g.accepts('"\t"') and not g.accepts('"abcd"')
    assert "\\x1f" in g.ebnf_text()

"""The product's HOCON writer against EMQX's grammar: whatever the operator writes (the PUT body,
emqx.conf) must read back, with EMQX's strict rules, as exactly what it meant. The strict parser is
the simulator's own (sandbox/emqxsim/hocon.py, written from emqx/hocon's scanner and grammar),
so the product's leniency (pyhocon) cannot hide a mismatch."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from kubectl_emqx.domain import hocon, spec, validation
from sandbox.emqxsim import hocon as emqx_hocon

# The oldest and the newest emqx/hocon releases EMQX 5 was built with (sandbox/emqxsim/versions.py).
DIALECTS = [emqx_hocon.Dialect((0, 28, 2)), emqx_hocon.Dialect((0, 39, 8)), emqx_hocon.Dialect((0, 44, 0))]
CASES = 600
# Everything a user might put into a string, including what EMQX's scanner is picky about; not the
# line separators U+2028/U+2029, which no EMQX release can read in a string (validation refuses them).
ALPHABET = (string.ascii_letters + string.digits + string.punctuation + " \t\n\r\b\f\x01\x7f"
            + "éß中文😀\u00a0_-.$@%|")
TRICKY = ["_json", "1.5MB", "10abc", "15s", "1MB", "100ms", "5.", "true", "false", "null", "include",
          "${HOME}x", "a b", "-1", "+1", "0x10", "1e5", "${", "}", "\\", '"', "#not a comment", "//x", "a.b",
          "", " ", "infinity", "5%", "10kb", "3GB", "2d", "1h30m", "1.0e-05", "emqx@127.0.0.1", "0.0.0.0:1883"]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(TRICKY)
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if kind < 0.45:
        return _text(rng)
    if kind < 0.55:
        return rng.randint(-10**12, 10**12)
    if kind < 0.62:
        return rng.choice([0.5, -2.25, 1e-05, 3.0e20, 123.456])
    if kind < 0.67:
        return rng.choice([True, False])
    if kind < 0.8 and depth < 3:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3:
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(1, 3))}
    return _text(rng)


def _key(rng: random.Random, dots: bool = True) -> str:
    key = _text(rng)
    if not dots:
        key = key.replace(".", "")
    return key if key and key.strip() == key and not key.startswith("$") else f"k{rng.randint(0, 99)}"


def _config(rng: random.Random, dots: bool) -> dict[str, Any]:
    config = {_key(rng, dots): _value(rng) for _ in range(rng.randint(1, 4))}
    return config if dots else _without_dotted_keys(config)


def _without_dotted_keys(value: Any) -> Any:
    """Before emqx/hocon 0.39.17 (EMQX before 5.3.1) a quoted key is split at its dots: validation
    refuses such keys for those releases (test_dotted_keys_are_refused_before_5_3_1)."""
    if isinstance(value, dict):
        return {k.replace(".", "_"): _without_dotted_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_dotted_keys(v) for v in value]
    return value


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: ".".join(map(str, d.hocon)))
def test_what_the_operator_writes_reads_back_the_same_in_emqx(dialect: emqx_hocon.Dialect) -> None:
    rng = random.Random(20261201)
    for case in range(CASES):
        config = _config(rng, dots=dialect.hocon >= (0, 39, 17))
        text = hocon.dump(config)
        try:
            read = emqx_hocon.parse(text, dialect)
        except emqx_hocon.HoconError as error:
            raise AssertionError(f"case {case}: EMQX cannot read\n{text}\n{error}") from None
        assert _normal(read) == _normal(config), f"case {case}:\n{text}"


@pytest.mark.parametrize("value", ["_json", "1.5MB", "10abc", "5.", "/opt/emqx/etc/acl.conf", "a b"])
def test_values_emqx_would_not_take_bare_are_quoted(value: str) -> None:
    text = hocon.dump({"k": value})
    assert text == f'k = "{value}"\n'
    assert emqx_hocon.parse(text) == {"k": value}


def test_exact_size_and_duration_tokens_stay_bare() -> None:
    assert hocon.dump({"a": "1MB", "b": "15s", "c": "100ms"}) == "a = 1MB\nb = 15s\nc = 100ms\n"


def test_dotted_keys_are_refused_before_5_3_1() -> None:
    def problems(image: str) -> list[validation.SpecError]:
        return validation.validate(spec.normalize({"metadata": {"name": "x"}, "spec": {
            "image": image, "replicantTemplate": {"spec": {"replicas": 0}},
            "config": {"data": 'rule_engine.rules { "my.rule" { sql = "SELECT * FROM t" } }\n'}}}))

    (error,) = problems("emqx/emqx:5.3.0")
    assert 'rule_engine.rules."my.rule"' in str(error.value) and "5.3.1" in error.fix
    assert problems("emqx/emqx:5.3.1") == []


def test_line_separators_inside_strings_are_refused_by_name() -> None:
    emqx = spec.normalize({"metadata": {"name": "x"}, "spec": {
        "image": "emqx/emqx:5.8.9", "config": {"data": 'a = "x\u2028y"\n'}}})
    (error,) = validation.validate(emqx)
    assert "U+2028" in error.message and error.field == "spec.config.data"


def _normal(value: Any) -> Any:
    """EMQX's parser drops empty objects and gives numbers as it scans them."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v != {}}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return value
    return value

"""Property: any text given to the settings loader gives Settings that work later in a run, or a one-line SettingsError.

A file's text and `--set` arguments are drawn from arbitrary Unicode (lone surrogates included, as Python makes them
from undecodable argv bytes) and from TOML-shaped text built on the real section and key names. Any exception other
than SettingsError fails, as does a message with a line break, or Settings that the OS, torch, numpy or a second
load would refuse.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st

from engine.settings.config import (
    SECTIONS,
    Settings,
    SettingsError,
    load_settings,
    save_settings,
    section_fields,
    to_toml,
)
from engine.settings.rules import synthetic_options

FUZZ = settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = [f"{section}.{f.name}" for section in SECTIONS for f in section_fields(section)]
ANY_CHAR = st.characters(exclude_categories=[])  # surrogates and control characters too
ODD_TEXT = st.text(ANY_CHAR, max_size=40) | st.sampled_from(
    ["", ".", "..", "a/b", "x" * 300, "é" * 130, "\udcff", "a\0b", "nan", "-1"]
)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["9" * 30, "4294967295", "4294967296", "0", "-1", "1e308", "-0.0", "1e-320", "5e-324"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # nan, inf, -inf are TOML spellings too
    st.sampled_from(["true", "false", "nan", "+inf", "-inf", "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "0x7f"]),
    ODD_TEXT.map(_quoted),
    ODD_TEXT.map(lambda t: "'" + t + "'"),
    ODD_TEXT,  # a bare word: text, as the CLI reads it
)
OPTION_KEYS = st.sampled_from(["samples", "features", "classes", "noise", "a", '"k y"', '"\\n"']) | st.from_regex(
    r"[a-z]{1,5}", fullmatch=True
)


def _tables(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(OPTION_KEYS, values), max_size=4)
    return pairs.map(lambda kvs: "{" + ", ".join(f"{k} = {v}" for k, v in kvs) + "}")


def _arrays(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(values, max_size=4).map(lambda vs: "[" + ", ".join(vs) + "]")


DEEP_ARRAYS = st.integers(min_value=1, max_value=1200).map(lambda depth: "[" * depth + "]" * depth)
TOML_VALUES = st.recursive(_scalars, lambda inner: _arrays(inner) | _tables(inner), max_leaves=12) | DEEP_ARRAYS


def _typed_values(section: str, name: str) -> st.SearchStrategy[str]:
    """Values of the key's own type, near and beyond its bounds, so that many draws load and reach assert_usable."""
    f = next(f for f in section_fields(section) if f.name == name)
    rules, default = f.metadata, Settings().to_dict()[section][name]
    if isinstance(default, bool):
        return st.sampled_from(["true", "false"])
    if isinstance(default, int):
        low, high = rules.get("min", 0), rules.get("max", 2**64)
        edges = [low - 1, low, high, high + 1, 2**63, 2**64]
        return (st.integers(min_value=-2, max_value=rules.get("max", 2**40)) | st.sampled_from(edges)).map(str)
    if isinstance(default, float):
        return (st.floats(min_value=0.0, max_value=1.0) | st.floats()).map(repr)
    if isinstance(default, list):
        return st.lists(st.integers(min_value=0, max_value=70_000), max_size=70).map(repr)
    if isinstance(default, dict):
        return _tables(TOML_VALUES)
    if "choices" in rules:
        return st.sampled_from(rules["choices"]) | ODD_TEXT.map(_quoted)
    return ODD_TEXT.map(_quoted) | st.sampled_from(["digits", "'a b'", "pkg.mod:Net", "cuda:0", "/tmp", "runs/sub"])


TYPED_OVERRIDES = st.sampled_from([(s, f.name) for s in SECTIONS for f in section_fields(s)]).flatmap(
    lambda key: _typed_values(*key).map(lambda value: f"{key[0]}.{key[1]}={value}")
)
ODD_KEYS = ["", ".", "run.", ".name", "run.name.extra", "training.lrr", "data.options.samples"]
KEY_TEXT = st.sampled_from(KEYS) | st.sampled_from(ODD_KEYS) | st.text(ANY_CHAR, max_size=20)
OVERRIDES = (
    st.tuples(KEY_TEXT, st.sampled_from(["=", " = ", "", "=="]), TOML_VALUES).map("".join)
    | st.text(ANY_CHAR, max_size=60)
    | TYPED_OVERRIDES
)
SECTION_LINES = st.sampled_from([f"[{s}]" for s in SECTIONS] + ["[run.name]", "[[run]]", "[]", "[nosuch]"])
KEY_NAMES = st.sampled_from([k.split(".")[1] for k in KEYS]) | st.text(ANY_CHAR, max_size=8)
KEY_LINES = st.tuples(KEY_NAMES, TOML_VALUES).map(lambda kv: f"{kv[0]} = {kv[1]}")
DOTTED_LINES = st.lists(TYPED_OVERRIDES.map(lambda line: line.replace("=", " = ", 1)), max_size=8).map("\n".join)
DOCUMENTS = (
    st.lists(SECTION_LINES | KEY_LINES | st.text(ANY_CHAR, max_size=20), max_size=12).map("\n".join)
    | DOTTED_LINES  # run.seed = 5: the same as seed = 5 under [run]
    | st.text(ANY_CHAR)
)
CODECS = st.sampled_from(
    [("utf-8", "replace"), ("utf-8", "surrogatepass"), ("latin-1", "replace"), ("utf-16", "surrogatepass")]
)
FILE_BYTES = st.tuples(st.sampled_from([b"", b"\xef\xbb\xbf"]), DOCUMENTS, CODECS).map(
    lambda t: t[0] + t[1].encode(*t[2])
)


def assert_one_line(error: SettingsError) -> None:
    message = str(error)
    assert message and "\n" not in message and message.isprintable(), repr(message)


def assert_usable(s: Settings, folder: Path) -> None:
    """What the run does with the values later: a second load, the seeds, threads and paths given to the OS."""
    text = to_toml(s)
    (folder / "again.toml").write_bytes(text.encode("utf-8"))
    assert load_settings(folder / "again.toml") == s
    if s.run.seed >= 0:
        torch.manual_seed(s.run.seed)
        torch.Generator().manual_seed(s.run.seed)
        np.random.seed(s.run.seed)
    previous = torch.get_num_threads()
    torch.set_num_threads(s.device.threads or previous)
    torch.set_num_threads(previous)
    run_dir = folder / "runs" / s.run.name
    run_dir.mkdir(parents=True)  # as engine.runs.folder.create_run_dir does (folder is fresh for every example)
    run_dir.rmdir()
    for path in (s.run.runs_dir, s.data.root, s.data.path):
        try:
            os.lstat(os.fsencode(path) or b".")
        except OSError as e:  # the path need not exist, but the OS must take it as a path
            assert e.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP), (path, e)
    if s.data.dataset == "synthetic":
        try:
            synthetic_options(s.data.options)
        except SettingsError as e:  # an unknown option is refused only when the data is built
            assert_one_line(e)
            assert "unknown option" in str(e)


def load_or_refuse(path, overrides=()) -> Settings | None:
    try:
        s = load_settings(path, overrides)
    except SettingsError as e:
        assert_one_line(e)
        event("refused")
        return None
    event("loaded")
    return s


@FUZZ
@given(override=OVERRIDES)
def test_any_set_argument_loads_or_is_one_line(override):
    s = load_or_refuse(None, [override])
    if s is not None:
        with tempfile.TemporaryDirectory() as folder:
            assert_usable(s, Path(folder))


@FUZZ
@given(content=FILE_BYTES)
def test_any_settings_file_loads_or_is_one_line(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings.toml"
        path.write_bytes(content)
        s = load_or_refuse(path)
        if s is None:
            return
        assert_usable(s, Path(folder))
        try:  # the console's ctrl+s over that same file
            save_settings(s.replace("training.epochs", s.training.epochs % 1000 + 1), path)
        except SettingsError as e:
            assert_one_line(e)
        else:
            assert load_settings(path).training.epochs == s.training.epochs % 1000 + 1


@FUZZ
@given(
    overrides=st.lists(
        TYPED_OVERRIDES | st.sampled_from(["model.name=pkg.mod:Net", "data.dataset=synthetic"]), min_size=1, max_size=6
    )
)
def test_many_set_arguments_on_real_keys_load_or_are_one_line(overrides):
    s = load_or_refuse(None, overrides)
    if s is not None:
        with tempfile.TemporaryDirectory() as folder:
            assert_usable(s, Path(folder))


EDGES = [
    "run.seed=4294967295",
    f"run.name='{'é' * 120}'",
    f"run.runs_dir='{'x' * 255}'",
    "device.threads=1024",
    "model.options={a=[[[[[[[1]]]]]]]}",
]


@pytest.mark.parametrize("override", EDGES)
def test_the_bounds_themselves_are_usable(override, tmp_path):
    """The checks of assert_usable at the edges the validation allows, so the property above is not vacuous there."""
    s = load_settings(None, [override, "model.name=pkg.mod:Net"])
    assert_usable(s, tmp_path)

"""Typed settings: defaults, validation messages, --set overrides and the TOML round trip."""

from __future__ import annotations

import os
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10, which the README supports: the same fallback as engine.settings.config
    import tomli as tomllib

from engine.settings.config import (
    DataSettings,
    Settings,
    SettingsError,
    from_dict,
    load_settings,
    parse_override,
    save_settings,
    to_toml,
)


def test_missing_file_gives_defaults(tmp_path):
    s = load_settings(tmp_path / "nope.toml")
    assert s == Settings()
    assert s.data.dataset == "digits" and s.model.hidden == [256, 128] and s.model.dropout == 0.3
    assert s.training.optimizer == "adam" and s.training.lr == 1e-3


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("")
    assert load_settings(path) == Settings()


def test_partial_file_keeps_other_defaults(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\nlr = 0.01\nepochs = 3\n")
    s = load_settings(path)
    assert s.training.lr == 0.01 and s.training.epochs == 3
    assert s.training.optimizer == "adam" and s.data == DataSettings()


def test_integer_is_accepted_for_a_float():
    s = from_dict({"training": {"lr": 1}})
    assert s.training.lr == 1.0 and isinstance(s.training.lr, float)


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message, "the message names the file"
    return message


def test_wrong_type_names_file_key_value_and_what_is_allowed(tmp_path):
    message = _error(tmp_path, '[training]\nlr = "fast"\n')
    assert "training.lr" in message and "'fast'" in message and "number" in message


def test_out_of_range_names_the_limit(tmp_path):
    message = _error(tmp_path, "[data]\nval_fraction = 0.95\n")
    assert "data.val_fraction" in message and "0.95" in message and "at most 0.9" in message
    message = _error(tmp_path, "[training]\nepochs = 0\n")
    assert "training.epochs" in message and "at least 1" in message


def test_bool_is_not_an_integer(tmp_path):
    message = _error(tmp_path, "[training]\nepochs = true\n")
    assert "training.epochs" in message and "integer" in message


def test_unknown_choice_lists_allowed_and_suggests(tmp_path):
    message = _error(tmp_path, '[training]\noptimizer = "adamm"\n')
    assert "training.optimizer" in message and "'adamm'" in message
    assert "did you mean 'adam'" in message and "sgd" in message


def test_unknown_key_suggests_the_close_one(tmp_path):
    message = _error(tmp_path, "[training]\nlearning_rate = 0.1\nepochz = 3\n")
    assert "training.learning_rate" in message
    message = _error(tmp_path, "[training]\nepochz = 3\n")
    assert "training.epochz" in message and "did you mean 'epochs'" in message


def test_unknown_section_suggests_the_close_one(tmp_path):
    message = _error(tmp_path, "[trainig]\nepochs = 3\n")
    assert "[trainig]" in message and "did you mean 'training'" in message


def test_toml_syntax_error_names_the_file(tmp_path):
    message = _error(tmp_path, "[training\nlr = 0.1\n")
    assert "TOML syntax error" in message


def test_list_of_sizes_is_checked(tmp_path):
    message = _error(tmp_path, "[model]\nhidden = [256, 0]\n")
    assert "model.hidden" in message and "at least 1" in message
    message = _error(tmp_path, "[model]\nhidden = [64, -3]\n")
    assert "model.hidden = [64, -3]" in message and "at least 1" in message
    message = _error(tmp_path, '[model]\nname = "cnn"\nchannels = [0]\n')
    assert "model.channels" in message and "at least 1" in message
    message = _error(tmp_path, '[model]\nhidden = ["a"]\n')
    assert "list of integers" in message


def test_an_empty_hidden_list_is_a_linear_mlp_but_a_cnn_needs_a_block(tmp_path):
    assert from_dict({"model": {"hidden": []}}).model.hidden == []  # logistic regression, see test_models
    message = _error(tmp_path, '[model]\nname = "cnn"\nchannels = []\n')
    assert "model.channels = []: cnn needs at least one convolution block" in message


def test_built_in_models_refuse_options_instead_of_ignoring_them(tmp_path):
    message = _error(tmp_path, "[model]\noptions = { width = 3 }\n")
    assert (
        "model.options = {'width': 3}: the built-in mlp (model.name = auto: the chapter's model, for 8x8 digits) "
        "takes no options (its settings are model.hidden and model.dropout)" in message
    )
    message = _error(tmp_path, '[model]\nname = "cnn"\noptions = { depth = 4 }\n')
    assert "model.options = {'depth': 4}: the built-in cnn takes no options (its settings are model.channels" in message
    with pytest.raises(SettingsError, match="takes no options"):
        Settings().replace("model.options", {"width": 3})
    assert from_dict({"model": {"name": "resnet18", "options": {"zero_init_residual": True}}}).model.options
    assert from_dict({"model": {"name": "pkg.nets:Net", "options": {"width": 3}}}).model.options == {"width": 3}


def test_unknown_model_and_dataset_are_refused(tmp_path):
    message = _error(tmp_path, '[model]\nname = "resnet1"\n')
    assert "model.name" in message and "'resnet1'" in message and "did you mean" in message
    message = _error(tmp_path, '[data]\ndataset = "mnits"\n')
    assert "data.dataset" in message and "did you mean 'mnist'" in message


def test_import_paths_and_torchvision_names_are_accepted():
    s = from_dict({"data": {"dataset": "mypkg.data:make"}, "model": {"name": "resnet18"}})
    assert s.data.dataset == "mypkg.data:make" and s.model.name == "resnet18"
    s = from_dict({"model": {"name": "mypkg.nets:Net"}})
    assert s.model.name == "mypkg.nets:Net"


def test_device_spelling_is_checked():
    for ok in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert from_dict({"device": {"device": ok}}).device.device == ok
    for bad in ("gpu", "cuda:²", "cuda:٣"):  # digits int() refuses, or reads as another number
        with pytest.raises(SettingsError, match="cuda:N"):
            from_dict({"device": {"device": bad}})


def test_cross_checks():
    with pytest.raises(SettingsError, match="data.path"):
        from_dict({"data": {"dataset": "csv"}})
    with pytest.raises(SettingsError, match="image folder"):
        from_dict({"data": {"dataset": "image-folder"}})
    with pytest.raises(SettingsError, match="no test split"):
        from_dict({"data": {"val_fraction": 0.0}})


def test_parse_override_uses_toml_values():
    assert parse_override("training.lr=0.01") == ("training.lr", 0.01)
    assert parse_override("model.hidden=[256, 128]") == ("model.hidden", [256, 128])
    assert parse_override("training.stop_on_nan=false") == ("training.stop_on_nan", False)
    assert parse_override("device.device=cpu") == ("device.device", "cpu"), "a bare word is a string"
    assert parse_override("data.dataset=fashion-mnist") == ("data.dataset", "fashion-mnist")
    assert parse_override("run.name='a b'") == ("run.name", "a b")
    assert parse_override("data.options={ samples = 300 }") == ("data.options", {"samples": 300})
    with pytest.raises(SettingsError, match="section.key=value"):
        parse_override("training.lr")
    with pytest.raises(SettingsError, match="section.key=value"):
        parse_override("=3")


def test_overrides_apply_on_top_of_the_file(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\nlr = 0.5\nepochs = 7\n")
    s = load_settings(path, ["training.lr=0.01", "model.hidden=[64, 32, 16]", "device.device=cpu"])
    assert s.training.lr == 0.01 and s.training.epochs == 7
    assert s.model.hidden == [64, 32, 16] and s.device.device == "cpu"


def test_bad_overrides_are_settings_errors():
    with pytest.raises(SettingsError, match="did you mean 'lr'"):
        load_settings(None, ["training.lrr=0.1"])
    with pytest.raises(SettingsError, match=r"unknown section \[trainin\]"):
        load_settings(None, ["trainin.lr=0.1"])
    with pytest.raises(SettingsError, match="section.key"):
        load_settings(None, ["lr=0.1"])
    with pytest.raises(SettingsError, match="training.lr = 'x'"):
        load_settings(None, ["training.lr=x"])


def test_replace_validates():
    s = Settings().replace("training.epochs", 40)
    assert s.training.epochs == 40
    with pytest.raises(SettingsError):
        Settings().replace("training.epochs", -1)


def test_to_toml_round_trip_with_lists_and_tables(tmp_path):
    s = load_settings(
        None,
        [
            "model.hidden=[512, 64, 8]",
            "model.name=mypkg.nets:Net",
            "model.options={ width = 3, name = 'x y', scale = 0.5, flags = [1, 2], nested = { deep = true } }",
            "data.options={ samples = 300, noise = 0.25 }",
            "data.dataset=synthetic",
            "run.name='quoted \"name\"'",
            "training.lr=3e-4",
            "training.stop_on_nan=false",
        ],
    )
    text = to_toml(s)
    assert tomllib.loads(text)  # valid TOML on its own
    path = tmp_path / "out" / "settings.toml"
    save_settings(s, path)
    back = load_settings(path)
    assert back == s
    assert back.model.options == {"width": 3, "name": "x y", "scale": 0.5, "flags": [1, 2], "nested": {"deep": True}}
    assert back.data.options == {"samples": 300, "noise": 0.25}
    assert [p.name for p in path.parent.iterdir()] == ["settings.toml"], "no temporary file left behind"


def test_to_toml_documents_every_key():
    text = to_toml(Settings())
    for section, values in Settings().to_dict().items():
        assert f"[{section}]" in text
        for key in values:
            line = next(i for i, ln in enumerate(text.splitlines()) if ln.startswith(f"{key} = "))
            assert text.splitlines()[line - 1].startswith("# ")


def test_shipped_settings_file_is_valid():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "settings.toml"
    s = load_settings(shipped)
    assert s.data.dataset == "digits" and s.model.name == "auto" and s.run.name == "auto"  # digits-mlp, the mlp


def test_a_bad_value_given_with_set_names_set_not_the_file(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\nepochs = 3\n")
    with pytest.raises(SettingsError, match=r"^--set training.lr=abc: training.lr = 'abc': expected a number$"):
        load_settings(path, ["training.lr=abc"])


USERS_FILE = """\
# My digits experiments: short runs while I tune.

[training]
optimizer = "sgd"
epochs = 5   # raise once it converges
momentum = 0.8

# where runs go
[run]
runs_dir = "experiments"
"""


def test_saving_over_a_users_file_keeps_its_comments_order_and_layout(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(USERS_FILE)
    s = load_settings(path).replace("training.epochs", 40).replace("model.hidden", [64])
    save_settings(s, path)
    assert path.read_text() == USERS_FILE.replace("epochs = 5 ", "epochs = 40 ") + "\n[model]\nhidden = [64]\n"
    assert load_settings(path) == s


def test_saving_writes_only_what_the_file_does_not_hold(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[data]\nin_memory = false  # slow disk\n\n[training]\nlr = 1\nmomentum = 0.8\n")
    before = path.read_text()
    s = load_settings(path)
    save_settings(s, path)
    assert path.read_text() == before, "lr = 1 is 1.0 and false is 'false': nothing differs, nothing is written"

    s = s.replace("training.momentum", 0.9).replace("training.epochs", 20)  # both back to (or still at) the default
    save_settings(s, path)
    text = path.read_text()
    assert "momentum = 0.9\n" in text, "a key the user wrote stays, with the default value"
    assert "epochs" not in text and "optimizer" not in text, "an unchanged default is not added"
    assert load_settings(path) == s


def test_saving_over_a_template_file_changes_only_the_changed_lines(tmp_path):
    """A run folder's settings.toml on resume: one value changes, one line changes."""
    path = tmp_path / "settings.toml"
    first = load_settings(None, ["model.options={}", "training.epochs=20"])
    save_settings(first, path)
    assert path.read_text() == to_toml(first), "a new file gets the commented template"
    save_settings(first.replace("training.epochs", 40), path)
    old, new = to_toml(first).splitlines(), path.read_text().splitlines()
    assert [(a, b) for a, b in zip(old, new) if a != b] == [("epochs = 20", "epochs = 40")] and len(old) == len(new)


def test_saving_keeps_a_sub_table(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[model]\nname = "resnet18"\n\n[model.options]\n# see torchvision\nzero_init_residual = true\n')
    s = load_settings(path).replace("model.options", {"zero_init_residual": False, "groups": 1})
    save_settings(s, path)
    assert path.read_text().endswith("[model.options]\n# see torchvision\nzero_init_residual = false\ngroups = 1\n")
    assert load_settings(path) == s


def test_a_section_added_above_its_sub_table_does_not_repeat_the_sub_tables_comment(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[data.options]  # synthetic opts\nsamples = 300\n")
    s = load_settings(path).replace("data.dataset", "synthetic")
    save_settings(s, path)
    assert path.read_text() == '[data]\ndataset = "synthetic"\n\n[data.options]  # synthetic opts\nsamples = 300\n'
    assert load_settings(path) == s


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[training]\nepochs = 3\nlr = 0.3\nepoch = 2\n", "unknown key training.epoch (did you mean 'epochs'?)"),
        ('[training]\nepochs = "many"  # to fix\nlr = 0.3\n', "training.epochs = 'many': expected an integer"),
        ("[training\nnot toml", "TOML syntax error"),
        (b"[training]\nepochs = 3 # \xff\n", "cannot read"),
    ],
)
def test_a_file_that_does_not_load_is_not_saved_over(tmp_path, text, problem):
    """The values on hand did not come from it.

    Writing them in would clobber what the user wrote, and report success for a file that still would not load.
    """
    path = tmp_path / "settings.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = path.read_bytes()
    with pytest.raises(SettingsError) as refused:
        save_settings(Settings().replace("training.lr", 0.5), path)
    message = str(refused.value)
    assert (
        message.startswith(f"not saved, the file does not load: {path}: ")
        and problem in message
        and "\n" not in message
    )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["settings.toml"], "no temporary file left behind"


def test_a_file_that_cannot_be_edited_in_place_is_not_replaced_by_the_template(tmp_path, monkeypatch):
    import engine.settings.config

    path = tmp_path / "settings.toml"
    path.write_text("# my notes\n[training]\nepochs = 3\n")
    monkeypatch.setattr(
        engine.settings.config, "update_toml", lambda text, changes: text
    )  # an edit that loses the change
    with pytest.raises(
        SettingsError,
        match=r"^not saved, .*settings.toml cannot be edited in place \(.*\); rename or delete it to write a new one$",
    ):
        save_settings(load_settings(path).replace("training.epochs", 4), path)
    assert path.read_text() == "# my notes\n[training]\nepochs = 3\n"


def test_saving_keeps_crlf_line_endings(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_bytes(b"# windows\r\n[training]\r\nepochs = 3  # short\r\nlr = 0.3\r\n")
    s = load_settings(path).replace("training.epochs", 4).replace("model.name", "cnn")
    save_settings(s, path)
    assert (
        path.read_bytes()
        == b'# windows\r\n[training]\r\nepochs = 4  # short\r\nlr = 0.3\r\n\r\n[model]\r\nname = "cnn"\r\n'
    )
    assert load_settings(path) == s


def test_saving_writes_through_a_symlink(tmp_path):
    real = tmp_path / "dotfiles" / "trainconsole.toml"
    real.parent.mkdir()
    real.write_text("[training]\nepochs = 3\n")
    link = tmp_path / "settings.toml"
    link.symlink_to(real)
    s = load_settings(link).replace("training.epochs", 4)
    save_settings(s, link)
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text() == "[training]\nepochs = 4\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["trainconsole.toml"], "no temporary file left behind"


def test_saving_keeps_the_file_mode(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[training]\nepochs = 3\n")
    path.chmod(0o600)
    s = load_settings(path).replace("training.epochs", 4)
    save_settings(s, path)
    assert path.stat().st_mode & 0o777 == 0o600

    fresh = tmp_path / "new.toml"  # a new file gets the usual mode (umask applied), not mkstemp's 0600
    save_settings(s, fresh)
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask


# -- values the OS, C code or TOML would refuse later in the run: refused here, in one line naming the key -----------


def _deep(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


BAD_OVERRIDES = [
    ("run.seed=99999999999999999999", "run.seed = 99999999999999999999: must be at most 4294967295"),
    ("run.seed=4294967296", "must be at most 4294967295"),
    ("run.seed=" + "9" * 5000, "run.seed = '99999"),  # more digits than Python converts: text, not a crash
    ("device.threads=99999999999", "device.threads = 99999999999: must be at most 1024"),
    ("training.step_size=99999999999999999999999", "training.step_size"),
    ("training.patience=10000001", "training.patience"),
    ("diagnostics.underfit_after=10000001", "diagnostics.underfit_after"),
    ("diagnostics.onset_min_epochs=10000001", "diagnostics.onset_min_epochs"),
    ("checkpoints.every=10000001", "checkpoints.every"),
    ("checkpoints.keep=10000001", "checkpoints.keep"),
    ("model.hidden=[99999999999999999999]", "model.hidden = [99999999999999999999]: every size must be at most 65536"),
    (
        "model.channels=[" + ", ".join(["8"] * 65) + "]",
        "model.channels = [8, 8, 8, 8, 8, 8, 8, 8, ...]: 65 sizes, at most 64",
    ),
    ("training.lr=1" + "0" * 400, "training.lr = <an integer of 1329 bits>: expected a finite number"),
    ("training.grad_clip=1" + "0" * 400, "training.grad_clip"),
    ("run.name='a/b'", "run.name = 'a/b': must be a plain folder name"),
    ("run.name='..'", "must be a plain folder name"),
    ("run.name=.", "must be a plain folder name"),
    ("run.name=" + "x" * 241, "241 bytes long, at most 240"),
    ("run.name=" + "é" * 121, "242 bytes long"),
    ('run.name="a\\u0000b"', r"run.name = 'a\x00b': control character '\x00' at character 1"),
    ('run.runs_dir="runs\\u0000"', "run.runs_dir"),
    ('data.path="a\\nb"', r"data.path = 'a\nb': control character '\n'"),
    ('data.root="a\\u2028b"', "data.root"),
    ('data.label_column="\\u001b[31m"', "control character"),
    ("run.name=a\udcffb", r"run.name = 'a\udcffb': not UTF-8 text ('\udcff' at character 1)"),
    ("data.root=\udcff", "data.root"),
    ("run.runs_dir=" + "x" * 256, "a folder or file name in it is longer than 255 bytes"),
    ("data.root=" + "ab/" * 1400, "4200 bytes long, at most 4095"),
    ("data.options={a=" + _deep(1000) + "}", "the value is nested too deeply"),
    ("data.options=" + _deep(1000), "the value is nested too deeply"),
    (
        "model.options={a=" + _deep(8) + "}",
        "model.options = {'a': [[[...]]]}: arrays and tables nested more than 8 deep",
    ),
    ("model.options={a={b={c={d={e={f={g={h={i=1}}}}}}}}}", "nested more than 8 deep"),
    ("model.options={when=1979-05-27T07:32:00Z}", "is not a plain value"),
    ("model.options={x=nan}", "model.options = {'x': nan}: nan is not a plain value"),
    ("model.options={x=[1, 2, inf]}", "inf is not a plain value"),
    ('model.options={"a\\nb"=1}', r"key 'a\nb': control character"),
    ('data.options={x="\udcff"}', "not UTF-8 text"),
    ("training.lr=1\nfoo = 2", r"training.lr = '1\nfoo = 2': expected a number"),
    ("train\ning.lr=1", r"--set train\ning.lr=1: unknown section [train\ning]"),
]


@pytest.mark.parametrize("override, expected", BAD_OVERRIDES, ids=[str(i) for i in range(len(BAD_OVERRIDES))])
def test_values_that_would_fail_later_are_one_line_settings_errors(override, expected):
    with pytest.raises(SettingsError) as info:
        load_settings(None, [override])
    message = str(info.value)
    assert message.isprintable(), "one line, no control characters or surrogates"
    assert expected in message


def test_bounds_themselves_are_allowed(tmp_path):
    s = load_settings(
        None,
        [
            "run.seed=4294967295",
            "device.threads=1024",
            "model.hidden=[65536]",
            "model.options={}",
            "run.name='" + "é" * 120 + "'",
            "run.runs_dir='" + "x" * 255 + "'",
            "training.grad_clip=1e308",
            "model.name=pkg.mod:Net",
            "model.options={a=" + _deep(7) + ", t='tab\tok?'}".replace("\t", " "),
        ],
    )
    assert s.run.seed == 2**32 - 1 and s.model.options["a"] == [[[[[[[1]]]]]]]
    assert load_settings(None, ["run.seed=-1"]).run.seed == -1


SYNTHETIC_BAD = [
    ('{samples = "x"}', "data.options.samples = 'x': expected an integer from 10 to 10000000"),
    ("{samples = 0}", "data.options.samples = 0"),
    ("{samples = -5}", "data.options.samples = -5"),
    ("{samples = 1000000000000}", "data.options.samples = 1000000000000"),
    ("{samples = true}", "data.options.samples = True"),
    ("{features = 1000000}", "data.options.features = 1000000"),
    ("{classes = 1}", "data.options.classes = 1"),
    ("{samples = 10000000, features = 100}", "samples x features (or classes) = 1000000000, at most 100000000"),
    ("{noise = nan}", "not a plain value"),
    ('{noise = "loud"}', "data.options.noise = 'loud': expected a number from 0 to 100"),
    ("{noise = -1}", "data.options.noise = -1"),
]


@pytest.mark.parametrize("options, expected", SYNTHETIC_BAD)
def test_synthetic_options_are_checked_with_the_settings(options, expected):
    with pytest.raises(SettingsError) as info:
        load_settings(None, ["data.dataset=synthetic", f"data.options={options}"])
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_synthetic_options_are_checked_where_the_data_is_made_too():
    from engine.settings.rules import synthetic_options

    assert synthetic_options({"samples": 300}) == {"samples": 300, "features": 20, "classes": 3, "noise": 0.5}
    with pytest.raises(SettingsError, match=r"^data.options.samples = 'x'"):
        synthetic_options({"samples": "x"})  # Settings built in code skip load_settings
    with pytest.raises(SettingsError, match="unknown option"):
        synthetic_options({"sample": 100})


@pytest.mark.parametrize("value", [object(), (1, 2), {1, 2}, b"bytes", 2**63, -(2**63) - 1])
def test_options_hold_only_plain_toml_values(value):
    with pytest.raises(SettingsError, match="model.options"):
        from_dict({"model": {"name": "pkg.mod:Net", "options": {"x": value}}})
    with pytest.raises(SettingsError, match="key 1 is not text"):
        from_dict({"model": {"name": "pkg.mod:Net", "options": {1: 2}}})


def test_options_of_unbounded_size_are_refused():
    with pytest.raises(SettingsError, match="more than 10000 values"):
        from_dict({"model": {"name": "pkg.mod:Net", "options": {"x": list(range(20_000))}}})


def test_a_python_integer_too_long_to_print_is_shown_by_its_size():
    with pytest.raises(SettingsError, match=r"run.seed = <an integer of \d+ bits>: must be at most"):
        from_dict({"run": {"seed": 10**5000}})


# -- the file itself -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'[run]\nname = "caf\xe9"\n', "not UTF-8 text (byte 17: b'\\xe9')"),
        (b"[model]\noptions = { a = " + _deep(1000).encode() + b" }\n", "arrays or tables nested too deeply"),
        (b"[run]\nseed = " + b"9" * 5000 + b"\n", "TOML syntax error: Exceeds the limit"),
        (b"[run]\nseed = 1979-05-27\n", "run.seed = datetime.date(1979, 5, 27): expected an integer"),
        (b'[run]\nname = "a\\u0000"\n', "control character"),
        (b'["\\n"]\nx = 1\n', r"unknown section [\n]"),
        (b"#" * (2**20 + 1), "larger than 1048576 bytes"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, expected):
    path = tmp_path / "settings.toml"
    path.write_bytes(content)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.isprintable() and str(path) in message and expected in message


def test_a_settings_path_that_is_no_file_is_one_line(tmp_path):
    with pytest.raises(SettingsError, match="is a folder, not a settings file"):
        load_settings(tmp_path)
    with pytest.raises(SettingsError, match="not a usable file name"):
        load_settings(str(tmp_path / "a\0b"))
    with pytest.raises(SettingsError, match="cannot read: File name too long"):
        load_settings(tmp_path / ("x" * 300))
    assert load_settings(tmp_path / "missing" / "settings.toml") == Settings()


def test_a_byte_order_mark_is_read_and_kept_on_save(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_bytes(b"\xef\xbb\xbf[training]\r\nepochs = 3\r\n")
    s = load_settings(path)
    assert s.training.epochs == 3
    save_settings(s.replace("training.epochs", 4), path)
    assert path.read_bytes() == b"\xef\xbb\xbf[training]\r\nepochs = 4\r\n"

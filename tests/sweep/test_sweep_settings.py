"""The [sweep] table: each mistake is one line naming the key; every value a trial can draw passes its setting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from engine.settings.config import Settings, SettingsError, load_settings
from engine.settings.sweep import apply_values, load_sweep, parse_sweep


def refusal(table: dict) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_sweep(table, Settings(), "s.toml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_issue_s_example_reads_back_with_lists_encoded_for_optuna_and_decoded():
    space = {"training.lr": {"log_uniform": [1e-4, 1e-1]}, "model.dropout": {"uniform": [0.0, 0.5]},
             "data.batch_size": {"int": [32, 256], "step": 32}, "model.hidden": {"choice": [[128], [256, 128]]},
             "training.optimizer": {"choice": ["adam", "sgd"]}}
    sweep = parse_sweep({"trials": 20, "sampler": "tpe", "pruner": "median", "space": space}, Settings(), "s.toml")
    assert [d.name for d in sweep.space] == list(space)
    hidden = sweep.space[3]
    assert hidden.encoded_choices() == ("[128]", "[256, 128]")
    assert hidden.decode("[256, 128]") == [256, 128]
    assert sweep.space_table() == space
    assert apply_values(Settings(), {"model.hidden": [256, 128]}).model.hidden == [256, 128]


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({"trails": 3, "space": {"training.lr": {"uniform": [0.1, 0.2]}}}, "sweep.trails"),
        ({"sampler": "bayes", "space": {"training.lr": {"uniform": [0.1, 0.2]}}}, "sweep.sampler"),
        ({"pruner": "asha", "space": {"training.lr": {"uniform": [0.1, 0.2]}}}, "sweep.pruner"),
        ({"trials": 0, "space": {"training.lr": {"uniform": [0.1, 0.2]}}}, "sweep.trials"),
        ({"space": {"training.lr": {"normal": [0.1, 0.2]}}}, "unknown distribution 'normal'"),
        ({"space": {"training.rate": {"uniform": [0.1, 0.2]}}}, "unknown setting training.rate"),
        ({"space": {"lr": {"uniform": [0.1, 0.2]}}}, '"lr"'),
        ({"space": {"training.lr": {"uniform": [0.2, 0.1]}}}, "low 0.2 is not below high 0.1"),
        ({"space": {"training.lr": {"log_uniform": [0.0, 0.1]}}}, "log_uniform needs low above 0"),
        ({"space": {"model.dropout": {"uniform": [0.0, 1.5]}}}, "model.dropout"),  # the setting's own max
        ({"space": {"training.optimizer": {"choice": ["adam", "rmsprop"]}}}, "training.optimizer"),
        ({"space": {"data.batch_size": {"uniform": [32, 64]}}}, "uniform is for number settings"),
        ({"space": {"data.batch_size": {"int": [32, 64], "step": 0}}}, "step must be a positive integer"),
        ({"space": {"run.runs_dir": {"choice": ["a", "b"]}}}, "cannot vary run.runs_dir"),
        ({"space": {}}, "[sweep.space] is empty"),
        ({"sampler": "grid", "space": {"training.lr": {"log_uniform": [1e-4, 0.1]}}}, "grid"),
        ({"heartbeat_s": 30, "grace_s": 20, "space": {"training.lr": {"uniform": [0.1, 0.2]}}}, "sweep.grace_s"),
    ],
)
def test_a_mistake_is_one_line_naming_the_key(table, names):
    assert names in refusal(table)


def test_grid_takes_choices_and_stepped_ranges():
    space = {"data.batch_size": {"int": [32, 96], "step": 32}, "model.dropout": {"uniform": [0.0, 0.4], "step": 0.2},
             "training.optimizer": {"choice": ["adam", "sgd"]}}
    assert len(parse_sweep({"sampler": "grid", "space": space}, Settings(), "s.toml").space) == 3


def test_a_run_trains_from_a_sweep_file_and_the_sweep_reads_its_table(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[training]\nepochs = 4\n[sweep]\ntrials = 5\n'
                    '[sweep.space]\n"training.lr" = {uniform = [0.1, 0.2]}\n')
    assert load_settings(path).training.epochs == 4
    settings, sweep = load_sweep(path, ["training.epochs=6"], trials=3)
    assert (settings.training.epochs, sweep.trials) == (6, 3)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["training.lr", "model.hidden", "uniform", "choice", "int",
                                                           "log_uniform", "step", "grid", "tpe", "none"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["uniform", "choice", "int", "log_uniform", "step", "x"]), inner, max_size=3), max_leaves=12)
TABLES = st.dictionaries(st.sampled_from(["trials", "sampler", "pruner", "space", "prune_on_diagnosis", "grace_s",
                                          "heartbeat_s", "other"]),
                         st.one_of(VALUES, st.dictionaries(st.sampled_from(["training.lr", "model.hidden",
                                                                            "model.dropout", "data.batch_size",
                                                                            "nope"]), VALUES, max_size=3)),
                         max_size=5)


@hypothesis_settings(max_examples=150, deadline=None)
@given(table=TABLES)
def test_any_table_is_a_sweep_or_one_line_settings_error(table):
    try:
        sweep = parse_sweep(table, Settings(), "s.toml")
    except SettingsError as e:
        assert "\n" not in str(e)
        return
    for dim in sweep.space:  # what was accepted draws values the settings take
        ends = dim.choices if dim.kind == "choice" else (dim.low, dim.high)
        for value in ends:
            apply_values(Settings(), {dim.name: value})

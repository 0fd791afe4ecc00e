"""The label column as a target: the auto rule, class order, and the refusals (engine.data.targets)."""

import pytest
import torch

from engine.data.targets import TargetError, make_target


def test_digit_labels_stay_classes_in_numeric_order():
    t = make_target(["10", "2", "1", "2", "10"] * 5)
    assert t.task == "classification" and t.note is None
    assert t.class_names == ["1", "2", "10"]
    assert t.y[:5].tolist() == [2, 1, 0, 1, 2] and t.y.dtype == torch.long


def test_a_non_whole_value_makes_a_regression_target_in_file_units():
    t = make_target(["1", "2", "2.5", "1"])
    assert t.task == "regression" and t.class_names is None
    assert t.y.dtype == torch.float32 and t.y.tolist() == [1.0, 2.0, 2.5, 1.0]
    assert "regression" in t.note and "model.task" in t.note


def test_many_distinct_whole_numbers_make_regression_few_stay_classes():
    many = [str(v) for v in range(25)] * 2  # 25 distinct of 50 rows
    assert make_target(many).task == "regression"
    hundred_classes = [str(v % 21) for v in range(1000)]  # 21 distinct, 2 % of the rows
    assert make_target(hundred_classes).task == "classification"


def test_explicit_task_wins_over_the_rule():
    many = [str(v) for v in range(25)] * 2
    assert make_target(many, task="classification").task == "classification"
    assert make_target(["0", "1", "0", "1"], task="regression").task == "regression"


def test_regression_refuses_text_naming_the_cell():
    with pytest.raises(TargetError, match=r"model.task = 'regression'.*'cat'"):
        make_target(["1.5", "cat"], task="regression", label="price")


def test_many_singleton_classes_are_refused_naming_model_task():
    cells = [f"id{k}" for k in range(60)] + ["a", "a"]
    with pytest.raises(TargetError, match=r"61 classes, 61 of them in one or two rows.*model.task"):
        make_target(cells, label="name")
    numbers = [str(k) for k in range(60)]
    with pytest.raises(TargetError, match="set model.task = 'regression'"):
        make_target(numbers, task="classification")


def test_many_classes_each_seen_a_few_times_are_classes():
    cells = [f"species {k}" for k in range(60)] * 3
    t = make_target(cells)
    assert t.task == "classification" and len(t.class_names) == 60


def test_decimal_comma_labels_read_as_numbers():
    t = make_target(["1,5", "2,25", "3"], decimal_comma=True)
    assert t.task == "regression" and t.y.tolist() == [1.5, 2.25, 3.0]


def test_a_single_value_is_refused():
    with pytest.raises(TargetError, match="single"):
        make_target(["1.5", "1.5"], task="regression")
    with pytest.raises(TargetError, match="single class"):
        make_target(["a", "a"])

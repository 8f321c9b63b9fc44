"""Notebook parameters: typed declarations checked with clear errors."""

import pytest

from routerwise.errors import ValidationError
from routerwise.paper import params


def ns(src: str) -> dict:
    """The namespace a parameters cell leaves (annotations included), as in a kernel."""
    out: dict = {}
    exec(compile(src, "<parameters>", "exec"), out)
    return out


CELL = '''
num_gpus: list[int] = [4, 8]  # cluster sizes
load_percent: float = 60  # percent of capacity
space: str = "paper"  # setup space
four: bool = True  # add the 4-model panel
workers: int = 2  # processes
'''


def test_defaults_pass_and_values_come_back():
    got = params.check(ns(CELL), num_gpus=params.Range(1, 64),
                       load_percent=params.Range(0, 100, lo_open=True),
                       space=params.OneOf("paper", "ours"), workers=params.Range(1, 64))
    assert got == {"num_gpus": [4, 8], "load_percent": 60, "space": "paper", "four": True,
                   "workers": 2}


@pytest.mark.parametrize("name, value, message", [
    ("load_percent", 0, r"'load_percent' \(float\) must be in \(0, 100\]; got 0"),
    ("load_percent", 100.5, r"must be in \(0, 100\]; got 100.5"),
    ("load_percent", "60", r"'load_percent' must be a float in \(0, 100\]; got '60' \(str\)"),
    ("num_gpus", [4, 0], r"each element of 'num_gpus' \(list\[int\]\) must be in \[1, 64\]; got 0"),
    ("num_gpus", [], r"'num_gpus' must be a non-empty list\[int\]"),
    ("num_gpus", [4.0], r"non-empty list\[int\]"),
    ("num_gpus", 4, r"non-empty list\[int\]"),
    ("space", "mine", r"'space' \(str\) must be one of \['paper', 'ours'\]; got 'mine'"),
    ("four", 1, r"'four' must be a bool"),
    ("workers", True, r"'workers' must be an int"),
    ("workers", 2.0, r"'workers' must be an int"),
])
def test_a_bad_value_names_the_parameter_its_type_and_range(name, value, message):
    n = ns(CELL)
    n[name] = value          # what papermill's injected cell does
    with pytest.raises(ValidationError, match=message):
        params.check(n, num_gpus=params.Range(1, 64),
                     load_percent=params.Range(0, 100, lo_open=True),
                     space=params.OneOf("paper", "ours"))


def test_a_constraint_for_an_undeclared_parameter_is_an_error():
    with pytest.raises(ValidationError, match=r"undeclared parameters \['num_gpu'\]"):
        params.check(ns(CELL), num_gpu=params.Range(1, 64))


def test_untyped_parameters_are_refused():
    with pytest.raises(ValidationError, match="name: type = value"):
        params.check(ns("x = 3\n"))


def test_nan_is_not_a_float_parameter():
    n = ns(CELL)
    n["load_percent"] = float("nan")
    with pytest.raises(ValidationError, match="must be a float"):
        params.check(n)


@pytest.mark.parametrize("value, mode", [("off", "off"), ("TEXT", "text"), (" widgets ", "widgets")])
def test_progress_mode_is_read_from_the_environment(monkeypatch, value, mode):
    from routerwise.settings import progress_mode
    monkeypatch.setenv("ROUTERWISE_PROGRESS", value)
    assert progress_mode() == mode


def test_auto_progress_uses_widgets_only_when_ipywidgets_is_installed(monkeypatch):
    import importlib.util

    from routerwise import settings
    monkeypatch.delenv("ROUTERWISE_PROGRESS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert settings.progress_mode() == "text"


def test_a_bad_progress_mode_is_refused(monkeypatch):
    from routerwise.settings import progress_mode
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "loud")
    with pytest.raises(ValidationError, match="auto, widgets, text, off"):
        progress_mode()


def test_progress_off_disables_the_bar(monkeypatch, capsys):
    from routerwise.paper.progress import tqdm
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "off")
    assert list(tqdm(range(3), desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("ROUTERWISE_PROGRESS", "text")
    list(tqdm(range(3), desc="bar-shown"))
    assert "bar-shown" in capsys.readouterr().err

"""The real headless CLI in a subprocess: `python -m engine` (and the `trainconsole` script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = {
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "lr",
    "seconds",
    "samples_per_s",
    "diagnostic",
}
TINY = ("--set", "training.epochs=2", "--set", "device.device='cpu'", "--set", "device.threads=1")


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    return env


def cli(cwd: Path, *args: str, extra_path: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `python -m engine ARGS` with stdout and stderr piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(extra_path),
    )


def runs_in(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "runs").iterdir()) if (cwd / "runs").is_dir() else []


def strict_json(line: str):
    """JSON as other tools read it: NaN and Infinity are not JSON (Python's json would accept them)."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def metrics(run_dir: Path) -> list[dict]:
    return [strict_json(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_shipped_settings_reach_95_percent_on_digits(tmp_path):
    shutil.copy(REPO / "settings.toml", tmp_path / "settings.toml")
    runs = tmp_path / "elsewhere"
    result = cli(tmp_path, "run", "--set", f"run.runs_dir={str(runs)!r}")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout and "\x1b" not in result.stdout, "piped output has no progress line"
    assert result.stderr.strip() == ""
    assert not (tmp_path / "runs").exists(), "runs_dir came from --set"
    (run_dir,) = list(runs.iterdir())
    rows = metrics(run_dir)
    assert [r["epoch"] for r in rows] == list(range(1, 21))
    for r in rows:
        assert METRIC_KEYS <= set(r)
        assert r["diagnostic"] in ("ok", "overfitting", "underfitting", "nan")
        assert isinstance(r["val_acc"], float) and r["lr"] == 0.001
    assert rows[-1]["val_acc"] >= 0.95
    epoch_lines = [ln for ln in result.stdout.splitlines() if ln.startswith("Epoch [")]
    assert len(epoch_lines) == 20 and "Val:" in epoch_lines[-1] and "| OK" in epoch_lines[-1]
    assert (run_dir / "checkpoints" / "best.pth").is_file() and (run_dir / "settings.toml").is_file()


def test_json_output_is_one_event_per_line(tmp_path):
    result = cli(tmp_path, "run", "--json", *TINY)
    assert result.returncode == 0, result.stderr
    events = [strict_json(line) for line in result.stdout.splitlines()]
    assert all("type" in e for e in events)
    types = [e["type"] for e in events]
    assert types[0] == "RunStarted" and types[-1] == "RunFinished"
    assert types.count("EpochCompleted") == 2
    assert events[-1]["status"] == "completed"
    assert "\r" not in result.stdout


def test_existing_run_folder_gets_a_suffix_and_script_matches_module(tmp_path):
    first = cli(tmp_path, "run", *TINY, "--set", "run.name=same")
    assert first.returncode == 0, first.stderr
    (run_dir,) = runs_in(tmp_path)
    before = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}
    script = Path(sys.executable).parent / "trainconsole"
    if not script.exists():
        script = Path(shutil.which("trainconsole") or "trainconsole")
    second = subprocess.run(
        [str(script), "run", *TINY, "--set", "run.name=same"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
    )
    assert second.returncode == 0, second.stderr
    assert [p.name for p in runs_in(tmp_path)] == ["same", "same-2"]
    after = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}
    assert after == before, "the first run's folder is untouched"
    a, b = metrics(tmp_path / "runs" / "same"), metrics(tmp_path / "runs" / "same-2")
    assert [(r["train_loss"], r["val_loss"]) for r in a] == [(r["train_loss"], r["val_loss"]) for r in b], (
        "the trainconsole script and python -m engine run the same training"
    )
    assert "runs/same-2" in second.stdout


BAD_SETTINGS = {
    # name: (settings.toml text or None, extra arguments, words the one stderr line must hold)
    "toml syntax": ("[training\nlr = 0.1\n", (), ("settings.toml", "TOML syntax error")),
    "unknown key": ("[training]\nepochz = 3\n", (), ("training.epochz", "did you mean 'epochs'")),
    "unknown section": ("[trainig]\nepochs = 3\n", (), ("[trainig]", "did you mean 'training'")),
    "wrong type": ('[training]\nlr = "fast"\n', (), ("training.lr", "'fast'", "number")),
    "out of range": ("[data]\nval_fraction = 0.95\n", (), ("data.val_fraction", "0.95", "at most 0.9")),
    "unknown dataset": (None, ("--set", "data.dataset=mnits"), ("data.dataset", "'mnits'", "did you mean 'mnist'")),
    "unknown model": (None, ("--set", "model.name=resnet1"), ("model.name", "'resnet1'", "resnet18")),
    "unknown optimizer": (None, ("--set", "training.optimizer=adamm"), ("training.optimizer", "'adamm'", "sgd")),
    "missing mnist": (
        None,
        ("--set", "data.dataset=mnist", "--set", "data.root=nowhere"),
        ("train-images-idx3-ubyte", str(Path("nowhere") / "MNIST" / "raw")),
    ),
    "unimportable model": (
        None,
        ("--set", "model.name='no_such_module_xyz:Net'"),
        ("model.name", "cannot import module 'no_such_module_xyz'"),
    ),
    "unavailable device": (None, ("--set", "device.device='cuda:99'"), ("device.device = 'cuda:99'",)),
    "bad --set syntax": (None, ("--set", "training.lr"), ("--set", "section.key=value")),
    "unknown --set key": (None, ("--set", "training.lrr=0.1"), ("training.lrr", "did you mean 'lr'")),
    "csv without path": (None, ("--set", "data.dataset=csv"), ("data.path", "CSV")),
    "digits without split": (None, ("--set", "data.val_fraction=0.0"), ("data.val_fraction", "no test split")),
    "unknown option": (None, ("--bogus",), ("unrecognized arguments", "--bogus")),
    "user model that cannot be built": (
        None,
        ("--set", "model.name='badinit:Net'"),
        ("model.name", "ValueError: bad init"),
    ),
}
FILES = {
    "user model that cannot be built": {
        "badinit.py": "class Net:\n    def __init__(self, num_classes):\n        raise ValueError('bad init')\n"
    }
}


# Runs each case as `python -m engine run ...` in a forked child of one interpreter that has already
# imported torch: the child is a real process (own cwd, own file descriptors 1 and 2, exit status)
# running engine/__main__.py, without paying torch's import sixteen times.
FORKED_CLI = r"""
import json, os, runpy, sys, traceback
import torch, torchvision, engine.cli, engine.training.trainer  # what every run imports anyway
results = {}
for name, cwd, args in json.loads(sys.argv[1]):
    out, err = os.path.join(cwd, "stdout"), os.path.join(cwd, "stderr")
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = ["trainconsole", *args]
        code = 0
        try:
            runpy.run_module("engine", run_name="__main__", alter_sys=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    results[name] = {"exit": os.waitstatus_to_exitcode(status), "stdout": open(out).read(), "stderr": open(err).read()}
print(json.dumps(results))
"""


def test_bad_settings_exit_2_with_one_line(tmp_path):
    cases = []
    for i, (name, (text, args, _)) in enumerate(BAD_SETTINGS.items()):
        cwd = tmp_path / f"case{i}"
        cwd.mkdir()
        if text is not None:
            (cwd / "settings.toml").write_text(text)
        for file, content in FILES.get(name, {}).items():  # the working folder is on sys.path, as with python -m
            (cwd / file).write_text(content)
        cases.append((name, str(cwd), ["run", *args]))
    # one case also as a plain `python -m engine` process, side by side with the others
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "settings.toml").write_text(BAD_SETTINGS["toml syntax"][0])
    plain = subprocess.Popen(
        [sys.executable, "-m", "engine", "run"],
        cwd=tmp_path / "plain",
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    forked = subprocess.run(
        [sys.executable, "-c", FORKED_CLI, json.dumps(cases)], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert forked.returncode == 0, forked.stderr
    results = json.loads(forked.stdout)
    out, err = plain.communicate(timeout=180)
    results["toml syntax (plain process)"] = {"exit": plain.returncode, "stdout": out, "stderr": err}
    problems = []
    for name, r in results.items():
        words = BAD_SETTINGS[name.partition(" (")[0]][2]
        err = r["stderr"]
        lines = err.strip().splitlines()
        if r["exit"] != 2 or len(lines) != 1 or "Traceback" in err or not all(w in err for w in words):
            problems.append(f"{name}: exit {r['exit']}, stderr {err!r}")
        elif not lines[0].startswith("trainconsole"):
            problems.append(f"{name}: {lines[0]!r} does not say who speaks")
    for _, cwd, _ in cases:
        if runs_in(Path(cwd)):
            problems.append(f"{cwd}: a run folder was created for bad settings")
    assert len(results) == len(BAD_SETTINGS) + 1
    assert not problems, "\n".join(problems)


USER_MODELS = """
import torch
from torch import nn

class Explodes(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
    def forward(self, x):
        raise RuntimeError("forward exploded on purpose")

class ReturnsNaN(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")
"""


def test_training_failures_exit_1(tmp_path):
    (tmp_path / "failing_models.py").write_text(USER_MODELS)
    crash = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", *TINY, "--set", "model.name='failing_models:Explodes'"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    nan_dir = tmp_path / "nan"
    nan_dir.mkdir()
    nan = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--json", *TINY, "--set", "model.name='failing_models:ReturnsNaN'"],
        cwd=nan_dir,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = crash.communicate(timeout=180)
    assert crash.returncode == 1, err
    assert "forward exploded on purpose" in err and "Traceback" not in err
    out, err = nan.communicate(timeout=180)
    assert nan.returncode == 1, err
    events = [strict_json(line) for line in out.splitlines()]
    assert events[-1]["type"] == "RunFinished" and events[-1]["status"] == "nan"
    assert [e["epoch"] for e in events if e["type"] == "EpochCompleted"] == [1], (
        "stop_on_nan stops after the first epoch"
    )
    (run_dir,) = runs_in(nan_dir)
    (row,) = metrics(run_dir)
    assert row["diagnostic"] == "nan"


def test_engine_never_imports_the_console_libraries(tmp_path):
    code = (
        "import sys, engine, engine.training.trainer, engine.cli, engine.settings.config, engine.data.loaders, "
        "engine.models.networks, engine.training.diagnostics, "
        "engine.device, engine.cli.printers, engine.runs.checkpoints, engine.runs.evaluate\n"
        "from engine.cli import main\n"
        f"code = main(['run', '--json', '--set', 'run.runs_dir={tmp_path / 'runs'}', '--set', 'training.epochs=1'])\n"
        "assert code == 0, code\n"
        "print('LOADED', [m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'plotext', 'textual_plotext', 'tui')])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=180, env=_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "LOADED []"
    assert runs_in(tmp_path), "the run really happened"


class _Out:
    """A stdout stand-in that says whether it is a terminal."""

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_line_only_on_a_terminal():
    from engine.cli.printers import EpochPrinter
    from engine.events import BatchProgressed, Diagnostic, EpochCompleted

    events = [BatchProgressed(1, i, 4, 1000.0, 1.0, 0.5) for i in range(1, 5)]
    events.append(EpochCompleted(1, 3, 0.5, 0.6, 0.8, 0.7, 1e-3, 1.0, 1000.0, Diagnostic("ok", "fine"), True, None))
    piped, tty = _Out(False), _Out(True)
    for out in (piped, tty):
        printer = EpochPrinter(out, out)
        for e in events:
            printer.on_event(e)
        printer.close()
    assert "\r" not in piped.text and "\x1b" not in piped.text
    assert piped.text.splitlines() == [
        "Epoch [1/3] | LR: 1.00e-03 | Train: 0.5000 (80.0%) | Val: 0.6000 (70.0%) | Gap: +0.1000 | OK | best"
    ]
    assert tty.text.count("\r") >= 4 and "4/4" in tty.text and tty.text.rstrip().endswith("| best")


def test_the_script_finds_user_modules_in_the_current_folder(tmp_path):
    # `python -m engine` puts the current folder on sys.path; the installed `trainconsole` script must too.
    (tmp_path / "mymodels.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def make(seed=0):\n"
        "    x = torch.randn(120, 4, generator=torch.Generator().manual_seed(seed))\n"
        "    return TensorDataset(x, (x[:, 0] > 0).long())\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, in_features, num_classes):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(in_features, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
    )
    script = Path(sys.executable).parent / "trainconsole"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [
            str(script),
            "run",
            "--set",
            "data.dataset=mymodels:make",
            "--set",
            "model.name=mymodels:Net",
            "--set",
            "training.epochs=1",
            "--set",
            "device.device=cpu",
            "--set",
            f"run.runs_dir={str(tmp_path / 'runs')!r}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "Run completed" in done.stdout


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    """`trainconsole checkpoints | head -1`: no BrokenPipeError traceback when head has gone."""
    runs = tmp_path / "runs"
    for i in range(40):  # enough lines that the output cannot all fit before the pipe closes
        (runs / f"run-{i}" / "checkpoints").mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "checkpoints", str(runs)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # gone before the first line is written
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


# Values that once passed validation and then crashed the run (or wrote a traceback): each is one line, exit 2.
DEEP = "[" * 1000 + "]" * 1000
SETTINGS_THAT_CRASHED_LATER = {
    "seed beyond numpy and torch": (
        None,
        ("--set", "run.seed=99999999999999999999"),
        ("run.seed", "at most 4294967295"),
    ),
    "threads beyond C's int": (None, ("--set", "device.threads=99999999999"), ("device.threads", "at most 1024")),
    "a number beyond any float": (None, ("--set", "training.lr=1" + "0" * 400), ("training.lr", "finite")),
    "run name with a slash": (None, ("--set", "run.name='a/b'"), ("run.name = 'a/b'", "plain folder name")),
    "run name with a NUL": (None, ("--set", 'run.name="a\\u0000b"'), ("run.name", "control character")),
    "undecodable argument byte": (None, ("--set", "run.name=a\udcffb"), ("run.name", "not UTF-8 text")),
    "options nested 1000 deep": (None, ("--set", f"data.options={{a={DEEP}}}"), ("data.options", "nested too deeply")),
    "synthetic samples of the wrong type": (
        None,
        ("--set", "data.dataset=synthetic", "--set", 'data.options={samples="x"}'),
        ("data.options.samples = 'x'",),
    ),
    "synthetic samples of terabytes": (
        None,
        ("--set", "data.dataset=synthetic", "--set", "data.options={samples=10000000000}"),
        ("data.options.samples = 10000000000",),
    ),
    "settings file not UTF-8": (b'[run]\nname = "caf\xe9"\n', (), ("settings.toml", "not UTF-8 text")),
    "settings file is a folder": ("folder", (), ("settings.toml", "is a folder")),
}


def test_settings_that_crashed_later_exit_2_with_one_line(tmp_path):
    cases = []
    for i, (name, (content, args, _)) in enumerate(SETTINGS_THAT_CRASHED_LATER.items()):
        cwd = tmp_path / f"case{i}"
        cwd.mkdir()
        if content == "folder":
            (cwd / "settings.toml").mkdir()
        elif content is not None:
            (cwd / "settings.toml").write_bytes(content)
        cases.append((name, str(cwd), ["run", *args]))
    # the first case also through the installed script, as a user types it
    script = subprocess.run(
        [str(Path(sys.executable).parent / "trainconsole"), "run", *cases[0][2][1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
    )
    forked = subprocess.run(
        [sys.executable, "-c", FORKED_CLI, json.dumps(cases)], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert forked.returncode == 0, forked.stderr
    results = json.loads(forked.stdout)
    results[f"{cases[0][0]} (trainconsole script)"] = {"exit": script.returncode, "stderr": script.stderr}
    problems = []
    for name, r in results.items():
        words = SETTINGS_THAT_CRASHED_LATER[name.partition(" (")[0]][2]
        lines = r["stderr"].splitlines()
        one_line = len(lines) == 1 and lines[0].startswith("trainconsole: error: ")
        if r["exit"] != 2 or not one_line or not all(w in lines[0] for w in words):
            problems.append(f"{name}: exit {r['exit']}, stderr {r['stderr']!r}")
    problems += [f"{cwd}: a run folder was created for bad settings" for _, cwd, _ in cases if runs_in(Path(cwd))]
    assert not problems, "\n".join(problems)

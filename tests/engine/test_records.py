"""The one reader (engine.runs.records): whatever bytes a run folder's file holds, records plus a count of skipped
lines, never an exception, never a wait on a FIFO; status.json's liveness data tell a gone process from a live one."""

from __future__ import annotations

import ast
import json
import math
import os
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.events import EpochCompleted, RunFinished, RunStarted
from engine.outputs.readers import MAX_TAGS, find_sources, read_lightning_csv
from engine.runs import records
from engine.runs.records import LineFollower, event_follower, event_record, read_events, read_metrics, read_status_file
from engine.runs.status import StatusRecord, boot_id, identity, process_lives, run_status

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def row(epoch: int, loss: float = 0.5) -> dict:
    return {
        "epoch": epoch,
        "train_loss": loss,
        "val_loss": loss + 0.1,
        "train_acc": 0.9,
        "val_acc": 0.8,
        "lr": 0.001,
        "seconds": 1.5,
        "samples_per_s": 1000.0,
        "diagnostic": "ok",
        "is_best": epoch == 1,
        "time": 1700000000.0 + epoch,
    }


GARBAGE_LINES = [
    b"[" * 100_000,  # json.loads raises RecursionError on it
    b'{"a": ' * 40 + b"1" + b"}" * 40,  # an object nested beyond reason
    b"\xff\xfe{\x00}\x00",  # UTF-16
    '{"epoch": 3, "train_loss": "caf\xe9"}'.encode("latin-1"),
    b'{"epoch": true, "train_loss": 0.1}',
    b'{"epoch": 0, "train_loss": 0.1}',
    b'{"epoch": -2, "train_loss": 0.1}',
    b'{"epoch": 2.0, "train_loss": 0.1}',
    b'{"epoch": 3, "train_loss": 1e308}',
    b'{"epoch": 3, "train_loss": Infinity}',
    b'{"epoch": 3, "train_loss": NaN}',
    b'{"epoch": 3, "train_loss": true}',
    b'{"epoch": 3, "train_loss": [1]}',
    b'{"epoch": 3, "is_best": 1}',
    b'{"train_loss": 0.1}',
    b"[1, 2]",
    b'"text"',
    b"1" * 5000,
    b"\x00\x01\x02",
]


def test_each_kind_of_bad_line_is_skipped_and_counted_and_the_rest_reads(tmp_path):
    good = [row(1), row(2, float("nan"))]
    lines = [json.dumps(row(1)).encode(), *GARBAGE_LINES, json.dumps({**row(2), "train_loss": "nan"}).encode()]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    found = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in found.items] == [g["epoch"] for g in good]
    assert found.items[0] == row(1)
    assert found.skipped == len(GARBAGE_LINES)
    assert found.note() == f"{tmp_path / 'metrics.jsonl'}: {len(GARBAGE_LINES)} lines skipped (not valid records)"


def test_events_are_typed_and_checked_field_by_field(tmp_path):
    finished = RunFinished("completed", "done", 2, 1, 0.3, "val_loss", str(tmp_path), 4.0)
    lines = [
        json.dumps(finished.to_dict()),
        json.dumps({**finished.to_dict(), "epochs_completed": "2"}),  # a string where a count belongs
        json.dumps({**finished.to_dict(), "best_value": False}),  # a boolean where a number belongs
        json.dumps({"type": "RunFinished"}),  # fields missing
        json.dumps({"type": "NoSuchEvent"}),
        json.dumps({**finished.to_dict(), "added_by_a_newer_version": 1}),  # an unknown field is left out
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    found = read_events(tmp_path / "events.jsonl")
    assert found.items == [finished, finished] and found.skipped == 4


# a line that is valid JSON but no valid record, or no JSON at all: any bytes without a newline
junk_lines = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.sampled_from(GARBAGE_LINES),
    st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.booleans(), st.text(max_size=5)), max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
)
valid_rows = st.builds(
    row, st.integers(1, 10_000), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
).map(lambda r: json.dumps(r).encode())


@FUZZ
@given(st.lists(st.one_of(valid_rows.map(lambda b: ("good", b)), junk_lines.map(lambda b: ("junk", b))), max_size=30))
def test_valid_rows_among_any_garbage_come_back_exactly(tmp_path, lines):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"".join(line + b"\n" for _, line in lines))
    found = read_metrics(path)
    assert found.items == [json.loads(line) for kind, line in lines if kind == "good"]
    # a junk line that happens to be a valid record (hypothesis may find one) is read, never lost
    assert found.skipped + len(found.items) == sum(1 for _, line in lines if line.strip())


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes_give_records_and_a_count(tmp_path, data):
    for name, read in (("metrics.jsonl", read_metrics), ("events.jsonl", read_events), ("status.json", None)):
        path = tmp_path / name
        path.write_bytes(data)
        found = read(path) if read else read_status_file(path)
        assert isinstance(found.items, list) and found.skipped >= 0 and found.refused == ""
    follower = event_follower(tmp_path / "events.jsonl")
    assert isinstance(follower.read_new(), list) and follower.skipped >= 0
    (tmp_path / "metrics.csv").write_bytes(data)
    source = read_lightning_csv(tmp_path / "metrics.csv")
    assert all(isinstance(step, int) for points in source.tags.values() for step, _ in points)


def test_the_follower_skips_garbage_between_events_and_holds_back_a_torn_line(tmp_path):
    path = tmp_path / "events.jsonl"
    started = EpochCompleted.__name__
    follower = event_follower(path)
    finished = RunFinished("completed", "", 1, None, None, "val_loss", "", 1.0)
    torn = b'{"type": "' + started.encode()
    path.write_bytes(b"[" * 50_000 + b"\n" + json.dumps(finished.to_dict()).encode() + b"\n" + torn)
    assert follower.read_new() == [finished] and follower.skipped == 1
    assert "1 line skipped" in follower.note()


def test_a_line_beyond_the_limit_is_skipped_once_and_never_held_whole(tmp_path):
    path, good = tmp_path / "metrics.jsonl", json.dumps(row(1)).encode() + b"\n"
    long_line = b"x" * (records.MAX_LINE_BYTES + 3 * records.READ_CHUNK)
    path.write_bytes(good + long_line + b"\n" + good + long_line)  # the last one without newline: not a torn line
    found = read_metrics(path)
    assert len(found.items) == 2 and found.skipped == 2
    follower = LineFollower(path, records.epoch_record)
    items = []
    while follower.offset < path.stat().st_size:
        items += follower.read_new(limit=records.READ_CHUNK)
        assert len(follower._partial) <= records.MAX_LINE_BYTES
    assert len(items) == 2 and follower.skipped == 2


def test_a_file_larger_than_any_run_writes_is_refused_unread(tmp_path):
    path = tmp_path / "events.jsonl"
    with open(path, "wb") as fh:  # sparse: takes no disk, would take the memory it claims if read whole
        fh.truncate(records.MAX_FILE_BYTES + 1)
    found = read_events(path)
    assert found.items == [] and "larger than" in found.note()


def test_a_csv_larger_than_the_limit_is_refused_before_any_byte_is_read(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    with open(path, "wb") as fh:
        fh.truncate(2**30)  # sparse: a gigabyte claimed, and held in memory if read to find out
    monkeypatch.setattr(records.os, "pread", lambda *a: pytest.fail("read a file it refuses"))
    assert "larger than 268,435,456 bytes; refused" in read_lightning_csv(path).note


def test_a_spreadsheets_encodings_read_alike(tmp_path):
    text = "step,val_lossé\n0,0.5\n1,0.25\n2,café\n"
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"):
        (tmp_path / "metrics.csv").write_bytes(text.encode(encoding))
        source = read_lightning_csv(tmp_path / "metrics.csv")
        assert source.tags == {"val_lossé": [(0, 0.5), (1, 0.25)]}, encoding
        assert "1 row skipped" in source.note, encoding


@pytest.mark.parametrize("name", ["metrics.jsonl", "events.jsonl", "status.json", "settings.toml", "metrics.csv"])
def test_a_fifo_is_refused_at_once_never_waited_on(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(records.RefusedFile, match="a FIFO, not a regular file; refused"):
        records.read_bytes(tmp_path / name, 100)
    assert "FIFO" in read_metrics(tmp_path / name).refused
    follower = LineFollower(tmp_path / name, records.event_record)
    assert follower.read_new() == [] and "FIFO" in follower.note()
    assert "FIFO" in records.settings_lines(tmp_path / name)
    with pytest.raises(records.RefusedFile):
        records.run_settings(tmp_path / name)


def test_a_symlink_is_refused(tmp_path):
    (tmp_path / "real.jsonl").write_text(json.dumps(row(1)) + "\n")
    (tmp_path / "metrics.jsonl").symlink_to(tmp_path / "real.jsonl")
    assert read_metrics(tmp_path / "metrics.jsonl").items == []
    assert "symbolic link" in read_metrics(tmp_path / "metrics.jsonl").refused


def test_one_bad_file_hides_only_itself_in_a_folder_of_logs(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "metrics.csv").write_text("step,loss\n0,1.0\n1,0.5\n")
    os.mkfifo(tmp_path / "b" / "metrics.csv")
    sources = {s.name: s for s in find_sources(tmp_path)}
    assert sources["a"].tags == {"loss": [(0, 1.0), (1, 0.5)]} and sources["a"].note == ""
    assert sources["b"].tags == {} and "FIFO" in sources["b"].note


def test_an_event_file_of_random_bytes_is_named_and_a_good_one_beside_it_still_reads(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    for name in ("good", "random", "huge-length"):
        (tmp_path / name).mkdir()
    with SummaryWriter(str(tmp_path / "good")) as writer:
        writer.add_scalar("loss", 0.5, 1)
    (tmp_path / "random" / "events.out.tfevents.1.x").write_bytes(bytes(range(256)) * 16)
    (tmp_path / "huge-length" / "events.out.tfevents.1.x").write_bytes((2**62).to_bytes(8, "little") + b"\0" * 64)
    sources = {s.name: s for s in find_sources(tmp_path)}
    assert sources["good"].tags == {"loss": [(1, 0.5)]} and sources["good"].note == ""
    for name in ("random", "huge-length"):
        assert sources[name].tags == {} and "no record read" in sources[name].note, name


def test_a_log_of_a_hundred_thousand_columns_keeps_the_first_tags_and_says_so(tmp_path):
    columns = [f"c{i:06d}" for i in range(100_000)]
    (tmp_path / "metrics.csv").write_text("step," + ",".join(columns) + "\n0," + ",".join(["0.5"] * 100_000) + "\n")
    (source,) = find_sources(tmp_path / "metrics.csv")
    assert sorted(source.tags) == columns[: MAX_TAGS]
    assert f"{100_000 - MAX_TAGS:,} tags left out" in source.note


# -- liveness -------------------------------------------------------------------------------------------------
def status(**fields) -> StatusRecord:
    now = time.time()
    return StatusRecord(**{**identity(os.getpid()), "started": now, "heartbeat": now, "state": "running", **fields})


def test_this_process_lives_and_a_gone_or_reused_pid_does_not():
    assert process_lives(status())
    assert not process_lives(status(pid_start=(status().pid_start or 0) + 1))  # the pid is someone else's now
    assert not process_lives(status(boot_id="not-this-boot"))  # the machine rebooted since
    assert boot_id() is not None and status().pid_start is not None


def test_another_hosts_run_is_alive_while_its_heartbeat_is_fresh():
    assert process_lives(status(host=socket.gethostname() + "-elsewhere", pid=2**22 - 1))
    old = time.time() - 3600
    assert not process_lives(status(host=socket.gethostname() + "-elsewhere", heartbeat=old))


def test_a_pid_no_process_can_have_is_no_status(tmp_path):
    for pid in (0, -1, 2**22 + 1, 2**40, 2**62):  # os.kill overflows on a pid beyond pid_t
        (tmp_path / "status.json").write_text(json.dumps({**status().__dict__, "pid": pid, "state": "starting"}))
        found = read_status_file(tmp_path / "status.json")
        assert found.items == [] and found.skipped == 1, pid


def test_a_heartbeat_from_the_future_or_a_pid_without_its_start_time_is_no_live_run():
    elsewhere = socket.gethostname() + "-elsewhere"
    assert not process_lives(status(host=elsewhere, heartbeat=time.time() + 3600))  # forged: alive forever else
    assert process_lives(status(host=elsewhere, heartbeat=time.time() + 5))  # a clock a little ahead
    assert not process_lives(status(pid=1, pid_start=None))  # this host records start times: not one of our runs


def test_a_status_naming_a_reused_pid_is_interrupted_not_running(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    started = RunStarted(str(tmp_path), {}, "cpu", "cpu", 1, 1, 1, 1, "", "fp32", 0, 2, 1)
    (tmp_path / "events.jsonl").write_text(json.dumps(started.to_dict()) + "\n")
    (tmp_path / ".lock").write_text("")
    (tmp_path / ".lock").chmod(0)  # as another user sees a run's lock: unopenable (root ignores it: see below)
    alive = {**identity(os.getpid()), "started": 1.0, "heartbeat": time.time(), "state": "running"}
    for fields, expected in (({}, "running"), ({"pid_start": 1}, "interrupted"), ({"boot_id": "x"}, "interrupted")):
        (tmp_path / "status.json").write_text(json.dumps({**alive, **fields}))
        if os.geteuid() == 0:  # root opens any lock: look as a user who cannot
            from unittest import mock

            with mock.patch("engine.runs.status.lock_held", return_value=None):
                assert run_status(tmp_path).status == expected, fields
        else:
            assert run_status(tmp_path).status == expected, fields


# -- every read goes through the reader --------------------------------------------------------------------------
# the reader: the typed records, and its lowest layer (opening files, splitting JSON lines)
READERS = {ROOT / "engine" / "runs" / "records.py", ROOT / "engine" / "runs" / "safe_reads.py"}
# open(...), Path.read_text/read_bytes, json.load(s), tomllib.load(s), EventFollower(...): what reads a file's content
READ_CALLS = {"open", "read_text", "read_bytes", "json.load", "json.loads", "tomllib.load", "tomllib.loads"}
# reads of files that are no run folder's nor a foreign log's: /proc, the user's own settings and data, images
ALLOWED = {
    ("engine/device.py", "open"),  # /proc/loadavg, /proc/stat
    ("engine/runs/status.py", "open"),  # /proc/<pid>/stat, /proc/sys/kernel/random/boot_id
    ("engine/settings/config.py", "open"),  # the user's own settings file (-c): trusted
    ("engine/settings/config.py", "tomllib.loads"),  # the user's own settings and --set values
    ("engine/data/table_reader.py", "open"),  # the user's data set (data.path): its head, to sniff the dialect
    ("engine/data/table_stream.py", "read_bytes"),  # the same, read again to name a bad cell's line
    ("engine/data/table_stream.py", "open"),  # the same, mapped to look for a quote character
    ("engine/data/table_cache.py", "open"),  # the same: its first and last MB, for the cache key
    ("engine/data/table_cache.py", "json.loads"),  # a decoded table's record, checked field by field (_checked)
    ("engine/settings/reference.py", "read_text"),  # this repository's own generated files, compared when checking
    ("engine/sweep/view.py", "json.loads"),  # a trial's params_decoded attribute (study.db): a str-keyed dict or none
    ("tui/sweep_files.py", "json.loads"),  # the last line `trainconsole sweep --detach --json` printed, keys checked
}


def calls_in(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name):  # records' own read_text, imported, is the reader's
            name = f.id if f.id == "open" or f.id.endswith("Follower") else ""
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("json", "tomllib"):
            name = f"{f.value.id}.{f.attr}"
        else:
            name = f.attr if isinstance(f, ast.Attribute) and f.attr in ("read_text", "read_bytes") else ""
        if name in READ_CALLS or name.endswith("Follower") and name != "LineFollower":
            found.add(name)
    return found


def test_no_file_is_read_outside_the_reader():
    offenders = set()
    for package in ("engine", "tui"):
        for path in (ROOT / package).rglob("*.py"):
            if path in READERS or "training" in path.relative_to(ROOT).parts:
                continue
            relative = str(path.relative_to(ROOT))
            offenders |= {(relative, name) for name in calls_in(path) if (relative, name) not in ALLOWED}
    assert offenders == set()


def test_the_scan_finds_a_read(tmp_path):
    (tmp_path / "m.py").write_text("import json\ndef f(p):\n    return json.load(open(p)), p.read_text()\n")
    assert calls_in(tmp_path / "m.py") == {"json.load", "open", "read_text"}


def test_a_nan_epochs_diagnostic_keeps_its_evidence_through_the_writer_and_the_reader():
    from engine.events import Diagnostic, EpochCompleted
    from engine.runs.folder import to_json

    nan, inf = float("nan"), float("inf")
    evidence = {"train_loss": nan, "val_loss": inf, "constant_loss": 2.3, "blown_up": 1.9e17}
    epoch = EpochCompleted(3, 5, nan, inf, 0.1, 0.1, 1e-3, 1.0, 10.0, Diagnostic("nan", "x", evidence), False, None)
    read = event_record(json.loads(to_json(epoch.to_dict())))
    assert read is not None and read.diagnostic.status == "nan"
    assert math.isnan(read.diagnostic.evidence["train_loss"]) and math.isnan(read.diagnostic.evidence["val_loss"])
    assert read.diagnostic.evidence["constant_loss"] == 2.3 and read.diagnostic.evidence["blown_up"] == 1.9e17

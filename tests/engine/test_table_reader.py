"""Tables through pyarrow: Parquet and Feather beside CSV, blocks under a memory budget, the decode cache."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from engine.data import table_cache
from engine.data.csv_reader import CsvError, read_csv, read_table
from engine.settings.config import load_settings

COLUMNS = ("a", "b", "colour", "label")


def _settings(path, *more):
    return load_settings(None, ("data.dataset=table", f"data.path={str(path)!r}", "data.csv_text=onehot",
                                "data.csv_missing=mean", *more)).data


def _rows(n: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    return [(int(rng.integers(0, 100)), None if i % 17 == 0 else round(float(rng.normal()), 4),
             ("red", "green", "blue")[i % 3], ("yes", "no")[i % 2]) for i in range(n)]


def _write_csv(path, rows, tail: str = ""):
    cells = [",".join("" if v is None else str(v) for v in r) for r in rows]
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(cells) + "\n" + tail)
    return path


def _arrow(rows) -> pa.Table:
    return pa.table({name: [r[k] for r in rows] for k, name in enumerate(COLUMNS)})


def _same(t1, t2):
    assert t1.feature_names == t2.feature_names and t1.class_names == t2.class_names
    assert torch.equal(t1.y, t2.y)
    assert torch.allclose(t1.x, t2.x, equal_nan=True)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINCONSOLE_TABLE_CACHE", raising=False)
    return tmp_path / "cache" / "trainconsole" / "tables"


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_parquet_and_feather_read_as_the_same_csv(tmp_path, suffix):
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    rows = _rows(60)
    from_csv = read_csv(_settings(_write_csv(tmp_path / "t.csv", rows)))
    path = tmp_path / f"t{suffix}"
    (pq.write_table if suffix == ".parquet" else feather.write_feather)(_arrow(rows), str(path))
    table = read_csv(_settings(path))
    _same(table, from_csv)
    assert table.feature_names == ["a", "b", "colour=blue", "colour=green", "colour=red"]
    assert table.fill_missing, "the empty cells of b wait for the training mean"


def test_a_parquet_label_of_numbers_is_read_as_its_text(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [0.5, 1.5, 2.5, 3.5], "label": [10, 2, 10, 2]}), str(tmp_path / "n.parquet"))
    table = read_csv(_settings(tmp_path / "n.parquet"))
    assert table.class_names == ["2", "10"] and table.y.tolist() == [1, 0, 1, 0]


def test_a_damaged_parquet_file_is_one_line(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(CsvError, match="not a readable parquet file") as info:
        read_csv(_settings(path))
    assert "\n" not in str(info.value)


def test_blocks_under_a_small_budget_give_the_unchunked_table(tmp_path):
    """A 1 MB budget parses 64 kB blocks; the late float in an int column and the late word in a number column
    make the reader widen those columns and read again."""
    rows = _rows(12_000)
    rows[-5] = (2.5, rows[-5][1], "blue", "no")
    rows[-3] = (rows[-3][0], "n/a", "red", "yes")
    path = _write_csv(tmp_path / "big.csv", rows)
    assert path.stat().st_size > 3 * 65536
    small = read_csv(_settings(path, "data.memory_budget_mb=1", "data.table_cache=false"))
    whole = read_csv(_settings(path, "data.table_cache=false"))
    _same(small, whole)
    assert small.x.shape == (12_000, 5) and small.x[-5, 0] == 2.5


def test_a_late_word_in_a_number_column_is_named_by_its_line(tmp_path):
    rows = _rows(12_000)
    rows[-2] = (rows[-2][0], "oops", "red", "yes")
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(CsvError, match="line 12000, column 'b': 'oops' is not a number"):
        read_csv(load_settings(None, ("data.dataset=csv", f"data.path={str(path)!r}", "data.memory_budget_mb=1",
                                      "data.csv_text=error")).data)


def test_quoted_newlines_keep_line_numbers(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,note,label\n1,"two\nlines",x\n2,plain,y\n3,more,x\nbad,z,y\n')
    s = load_settings(None, ("data.dataset=csv", f"data.path={str(path)!r}", "data.columns={note='drop'}")).data
    with pytest.raises(CsvError, match="line 6, column 'a': 'bad'"):
        read_csv(s)


def test_a_width_error_names_its_line(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("a,label\n1,x\n2,y\n3,x,extra\n")
    with pytest.raises(CsvError, match="line 4 has 3 fields, the header has 2"):
        read_csv(_settings(path))


def test_the_second_read_comes_from_the_cache(tmp_path, own_cache):
    path = _write_csv(tmp_path / "t.csv", _rows(50))
    first = read_table(_settings(path))
    assert len(list(own_cache.glob("*.npz"))) == 1
    second = read_table(_settings(path))
    _same(first, second)
    assert second.notes[-1].startswith("decoded table read from the cache")
    assert second.categories == first.categories and second.fill_missing == first.fill_missing
    other = read_table(_settings(path, "data.csv_missing=drop"))  # a setting that shapes the table: another key
    assert len(other.y) < len(first.y) and len(list(own_cache.glob("*.npz"))) == 2


def test_a_changed_file_is_read_again(tmp_path, own_cache):
    path = _write_csv(tmp_path / "t.csv", _rows(50))
    read_table(_settings(path))
    _write_csv(path, _rows(80))
    again = read_table(_settings(path))
    assert len(again.y) == 80 and not any("cache" in n for n in again.notes)


@pytest.mark.parametrize("damage", ["torn", "foreign", "inconsistent", "link"])
def test_a_damaged_or_foreign_cache_file_is_ignored_and_rewritten(tmp_path, own_cache, damage):
    path = _write_csv(tmp_path / "t.csv", _rows(50))
    first = read_table(_settings(path))
    (stored,) = own_cache.glob("*.npz")
    if damage == "torn":
        stored.write_bytes(stored.read_bytes()[:300])
    elif damage == "foreign":
        np.savez(stored.with_suffix(""), x=np.zeros((2, 2)), y=np.zeros(2))  # savez adds .npz
    elif damage == "inconsistent":  # a record of another key: copied from elsewhere, or stale
        np.savez(stored.with_suffix(""), x=first.x.numpy()[:, :2], y=first.y.numpy(),
                 meta=np.frombuffer(b'{"key": "other"}', dtype=np.uint8))
    else:
        target = tmp_path / "elsewhere.npz"
        stored.rename(target)
        stored.symlink_to(target)
    again = read_table(_settings(path))
    _same(again, first)
    assert not any("cache" in n for n in again.notes), "parsed again, not trusted"
    rewritten = read_table(_settings(path))
    _same(rewritten, first)
    assert rewritten.notes[-1].startswith("decoded table read from the cache"), "rewritten as a sound file"
    assert not stored.is_symlink()


@pytest.mark.parametrize("off", ["setting", "environment"])
def test_the_cache_can_be_turned_off(tmp_path, own_cache, monkeypatch, off):
    path = _write_csv(tmp_path / "t.csv", _rows(50))
    more = ("data.table_cache=false",) if off == "setting" else ()
    if off == "environment":
        monkeypatch.setenv("TRAINCONSOLE_TABLE_CACHE", "off")
    read_table(_settings(path, *more))
    read_table(_settings(path, *more))
    assert not own_cache.exists() or not list(own_cache.iterdir())


def test_the_cache_folder_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert table_cache.cache_folder() == tmp_path / "x" / "trainconsole" / "tables"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert table_cache.cache_folder() == tmp_path / "home" / ".cache" / "trainconsole" / "tables"


def test_quoted_values_with_newlines_across_blocks_read_as_written(tmp_path):
    """A file with quotes after its header is parsed in order (newlines in values); the same rows unquoted are
    split at any newline and parsed in parallel: both give the same table, block by block or whole."""
    rows = _rows(12_000)
    plain = _write_csv(tmp_path / "plain.csv", rows)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"' + '","'.join(COLUMNS) + '"\n'
                      + "\n".join(f'{a},{"" if b is None else b},"{c}\n{c}",{lab}' for a, b, c, lab in rows) + "\n")
    for budget in ("data.memory_budget_mb=1", "data.memory_budget_mb=2048"):
        a = read_csv(_settings(plain, budget, "data.table_cache=false"))
        b = read_csv(_settings(quoted, budget, "data.table_cache=false"))
        assert a.x.shape == b.x.shape == (12_000, 5) and torch.allclose(a.x, b.x, equal_nan=True)
        assert [n.split("=")[0] for n in a.feature_names] == [n.split("=")[0] for n in b.feature_names]


def test_reading_a_table_does_not_import_pandas(tmp_path):
    """Arrow imports pandas, where it is installed, for its own NumPy conversion of an array with missing values
    and for every scalar (0.6 s and tens of MB of a read): the reader takes its values from Arrow's buffers."""
    import subprocess
    import sys

    pytest.importorskip("pandas", reason="only a machine with pandas installed can show it is not imported")
    path = _write_csv(tmp_path / "t.csv", _rows(300))
    code = ("import sys; from engine.data.csv_reader import read_csv; from engine.settings.config import "
            "load_settings; s = load_settings(None, ('data.path=' + repr(sys.argv[1]), 'data.dataset=csv', "
            "'data.csv_text=onehot', 'data.csv_missing=mean', 'data.table_cache=false')).data; "
            "t = read_csv(s); assert t.x.isnan().any(); print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"

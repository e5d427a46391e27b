"""Tests of :mod:`gnnrec.data.cache`: the processed-data cache, its key and its checks.

Damage, killed builds and concurrent builds are tested on the real ML-100K files and on
a three-row folder; each case states what the cache does about it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from gnnrec.data import (
    AtomicSource,
    FolderSource,
    InteractionData,
    cache_key,
    load_dataset,
    preprocess,
)
from gnnrec.data import cache as data_cache
from gnnrec.utils import cache as cache_module
from gnnrec.utils.cache import manifest_problem, write_manifest
from tests.processes import kill_when_writing, run_together


def write_folder(root: Path, rating: int = 5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "books.inter.csv").write_text(
        f"user_id,item_id,rating,timestamp\nu1,0001,{rating},1\nu2,0001,3,2\nu2,0002,4,3\n"
    )
    (root / "books.item.csv").write_text("item_id,title,brand\n0001,One,\n0002,Two,B\n")
    return root


class CountingSource(FolderSource):
    """A FolderSource that counts its loads."""

    loads = 0

    def load(self):
        type(self).loads += 1
        return super().load()


def assert_same_data(a: InteractionData, b: InteractionData) -> None:
    for name in ("interactions", "users", "items", "kg", "item_entity"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None) == (right is None), name
        if left is not None:
            pd.testing.assert_frame_equal(left, right, check_dtype=True)
    assert a.domains == b.domains and a.meta == b.meta


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cache_hit_returns_identical_data(tmp_path, monkeypatch):
    monkeypatch.setattr(CountingSource, "loads", 0)
    source = CountingSource(write_folder(tmp_path / "d"))
    cache = tmp_path / "cache"
    first = load_dataset(source, preprocess={"kcore": 0}, cache_dir=cache)
    second = load_dataset(source, preprocess={}, cache_dir=cache)  # same options, defaults
    assert CountingSource.loads == 1
    assert_same_data(first, second)
    assert second.items["item"].tolist() == ["0001", "0002"]
    assert pd.api.types.is_string_dtype(second.items["item"])
    assert second.items["brand"].isna().tolist() == [True, False]
    entries = [p.name for p in (cache / "processed").iterdir()]
    assert entries == [cache_key(source)]
    entry = cache / "processed" / cache_key(source)
    assert listing(entry) == [
        "interactions.parquet",
        "items.parquet",
        "manifest.json",
        "meta.json",
        "users.parquet",
    ]
    assert manifest_problem(entry) is None
    load_dataset(source, preprocess={"rating_threshold": 4}, cache_dir=cache)
    assert CountingSource.loads == 2
    load_dataset(source, cache_dir=cache, use_cache=False)
    assert CountingSource.loads == 3


def test_cache_key_follows_file_content(tmp_path):
    root = write_folder(tmp_path / "d")
    source = FolderSource(root)
    key = cache_key(source)
    assert cache_key(FolderSource(root)) == key
    assert cache_key(source, {"kcore": 2}) != key
    write_folder(root, rating=1)
    assert cache_key(source) != key
    data = load_dataset(source, cache_dir=tmp_path / "cache")
    assert data.interactions["rating"].tolist()[0] == 1.0


def _import_file(path: Path, name: str, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


FORMAT_FILE = """from gnnrec.data import FolderSource


class MyFormat(FolderSource):
    \"\"\"A format of its own.\"\"\"

    SCALE = {scale}
"""


@pytest.mark.parametrize("module", ["preprocess.py", "cache.py"])
def test_cache_key_follows_the_code_that_builds_the_tables(module, tmp_path, monkeypatch):
    root = write_folder(tmp_path / "d")
    files = {p.name for p in data_cache.code_files(FolderSource(root))}
    assert files == {"cache.py", "preprocess.py", "schema.py", "base.py", "folder.py"}
    # A format file of its own: editing one line changes the key, the same text does not.
    code = tmp_path / "my_format.py"
    code.write_text(FORMAT_FILE.format(scale=1))
    first = cache_key(_import_file(code, "my_format", monkeypatch).MyFormat(root))
    assert cache_key(_import_file(code, "my_format", monkeypatch).MyFormat(root)) == first
    code.write_text(FORMAT_FILE.format(scale=2))
    assert cache_key(_import_file(code, "my_format", monkeypatch).MyFormat(root)) != first
    # An edit of preprocess.py or of the cache's writer (a copy with one changed line).
    source = FolderSource(root)
    key = cache_key(source)
    real = data_cache.code_files
    (original,) = [p for p in real(source) if p.name == module]
    edited = tmp_path / module
    edited.write_text(original.read_text() + "# an edit\n", encoding="utf-8")
    monkeypatch.setattr(
        data_cache, "code_files", lambda s: [edited if p == original else p for p in real(s)]
    )
    assert cache_key(source) != key


def test_unknown_preprocess_key(tmp_path):
    with pytest.raises(ValueError, match=r"data\.preprocess\.k_core"):
        load_dataset(FolderSource(write_folder(tmp_path / "d")), preprocess={"k_core": 5})


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    source = FolderSource(write_folder(tmp_path / "d"))
    cache = tmp_path / "cache"
    real_to_parquet = pd.DataFrame.to_parquet
    calls = []

    def failing_to_parquet(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        load_dataset(source, cache_dir=cache)
    assert list((cache / "processed").iterdir()) == []
    monkeypatch.undo()
    load_dataset(source, cache_dir=cache)
    assert [p.name for p in (cache / "processed").iterdir()] == [cache_key(source)]


def test_concurrent_writer_wins(tmp_path, monkeypatch):
    source = FolderSource(write_folder(tmp_path / "d"))
    cache = tmp_path / "cache"
    final = cache / "processed" / cache_key(source)
    real_rename = os.rename

    def rename_after_other_process(src, dst):
        if Path(dst) == final:
            data_cache.write_processed(preprocess(source.load()), _mkdir(final))
            write_manifest(final)
        return real_rename(src, dst)

    monkeypatch.setattr(cache_module.os, "rename", rename_after_other_process)
    data = load_dataset(source, cache_dir=cache)
    assert [p.name for p in (cache / "processed").iterdir()] == [final.name]
    assert_same_data(data, data_cache.read_processed(final))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_folder_item_rows_without_interactions_survive_the_cache(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "books.item.csv").write_text("item_id,title,brand\n0001,One,\n0002,Two,B\n0003,New,C\n")
    data = load_dataset(FolderSource(root), cache_dir=tmp_path / "cache")
    again = load_dataset(FolderSource(root), cache_dir=tmp_path / "cache")
    assert_same_data(data, again)
    assert again.items[["item", "title"]].values.tolist() == [
        ["0001", "One"],
        ["0002", "Two"],
        ["0003", "New"],
    ]
    assert 2 not in set(again.interactions["item_idx"])


# ------------------------------------------------------------------ damage


def _silent_flip(file: Path) -> int:
    """Flip one bit of ``file`` where parquet still reads it, with other values; the offset."""
    raw = file.read_bytes()
    reference = pd.read_parquet(file)
    for offset in range(4, len(raw)):
        damaged = bytearray(raw)
        damaged[offset] ^= 0x01
        file.write_bytes(bytes(damaged))
        try:
            read = pd.read_parquet(file)
        except Exception:  # noqa: BLE001 - pyarrow raises several kinds; look further
            continue
        if not read.equals(reference):
            return offset
    raise AssertionError(f"no bit of {file} flips silently")


def test_flipped_byte_in_a_parquet_is_rebuilt_with_a_warning(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(CountingSource, "loads", 0)
    source = AtomicSource(data_root / "ml-100k-kg" / "ml-100k_recbole", "ml-100k")
    first = load_dataset(source, cache_dir=tmp_path)
    entry = tmp_path / "processed" / cache_key(source)
    _silent_flip(entry / "interactions.parquet")
    # The parquet reader alone takes the flipped file and gets other interactions.
    unchecked = data_cache.read_processed(entry).interactions
    assert not unchecked.equals(first.interactions)
    with pytest.warns(UserWarning) as record:
        again = load_dataset(source, cache_dir=tmp_path)
    (warning,) = [str(w.message) for w in record]
    assert warning.startswith(f"cache entry {entry} is damaged: interactions.parquet has SHA-256 ")
    assert warning.endswith("; rebuilding it")
    assert_same_data(again, first)
    assert_same_data(again, load_dataset(source, use_cache=False))
    assert manifest_problem(entry) is None
    assert listing(tmp_path / "processed") == [entry.name]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("truncate", "items.parquet has 100 bytes, manifest.json records {size}"),
        ("delete", "items.parquet is missing"),
        ("extra", "notes.txt is not in manifest.json"),
        (
            "no_manifest",
            "it has no manifest.json (written by an older gnnrec, or changed by hand)",
        ),
        ("meta", "meta.json has SHA-256 {sha}..., manifest.json records {recorded}..."),
    ],
)
def test_damaged_entry_is_rebuilt_naming_what_is_wrong(damage, problem, tmp_path):
    source = FolderSource(write_folder(tmp_path / "d"))
    cache = tmp_path / "cache"
    first = load_dataset(source, cache_dir=cache)
    entry = cache / "processed" / cache_key(source)
    items, meta = entry / "items.parquet", entry / "meta.json"
    size, recorded = items.stat().st_size, cache_module.file_sha256(meta)
    if damage == "truncate":
        items.write_bytes(items.read_bytes()[:100])
    elif damage == "delete":
        items.unlink()
    elif damage == "extra":
        (entry / "notes.txt").write_text("not written by the cache")
    elif damage == "no_manifest":
        (entry / "manifest.json").unlink()
    else:  # an edit that keeps meta.json valid JSON
        meta.write_text(meta.read_text().replace('"books"', '"bookz"'))
    sha = cache_module.file_sha256(meta)
    expected = problem.format(size=size, sha=sha[:16], recorded=recorded[:16])
    with pytest.warns(UserWarning) as record:
        again = load_dataset(source, cache_dir=cache)
    assert [str(w.message) for w in record] == [
        f"cache entry {entry} is damaged: {expected}; rebuilding it"
    ]
    assert_same_data(again, first)
    assert manifest_problem(entry) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt entry loads without a warning
        assert_same_data(load_dataset(source, cache_dir=cache), first)


def test_readable_manifest_but_unreadable_table_is_rebuilt(tmp_path):
    source = FolderSource(write_folder(tmp_path / "d"))
    cache = tmp_path / "cache"
    first = load_dataset(source, cache_dir=cache)
    entry = cache / "processed" / cache_key(source)
    (entry / "items.parquet").write_bytes(b"not parquet")
    write_manifest(entry)  # a manifest that matches a broken file
    with pytest.warns(UserWarning, match=f"processed-data cache {entry} is unreadable"):
        again = load_dataset(source, cache_dir=cache)
    assert_same_data(again, first)


# ------------------------------------------------------------------ killed builds


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "processed").iterdir() if p.name.endswith(".tmp"))


def test_leftover_temporaries_are_removed_by_the_next_build(tmp_path, caplog):
    source = FolderSource(write_folder(tmp_path / "d"))
    cache = tmp_path / "cache"
    key = cache_key(source)
    processed = cache / "processed"
    left = [
        processed / f".{key}.0123456789abcdef.tmp",  # a folder of today's names
        processed / f".{key}.ab_cd9ef.tmp",  # tempfile's names, before
    ]
    for folder in left:
        _mkdir(folder)
        (folder / "interactions.parquet").write_bytes(b"half a file")
    others = [processed / f".{'0' * 64}.0123456789abcdef.tmp", processed / f".{key}.tmp"]
    for other in others:
        _mkdir(other)
    with caplog.at_level(logging.WARNING, logger="gnnrec.utils.cache"):
        load_dataset(source, cache_dir=cache)
    assert listing(processed) == sorted([key, *(p.name for p in others)])
    assert caplog.messages == [
        f"removed {p}, left by a write of {processed / key} that did not finish" for p in left
    ]


def _build_then_hang(root: str, cache: str, marker: str) -> None:
    """Preprocess, write the first parquet file, then hang (killed by the test)."""
    real = pd.DataFrame.to_parquet

    def slow_to_parquet(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        Path(marker).write_text(str(path))
        time.sleep(600)

    pd.DataFrame.to_parquet = slow_to_parquet
    load_dataset(FolderSource(Path(root)), cache_dir=cache)


def test_build_killed_mid_write_is_cleaned_and_rebuilt(tmp_path):
    root = write_folder(tmp_path / "d")
    cache, marker = tmp_path / "cache", tmp_path / "writing.txt"
    writing = kill_when_writing(_build_then_hang, (str(root), str(cache), str(marker)), marker)
    key = cache_key(FolderSource(root))
    (half,) = _leftovers(cache)
    assert half.startswith(f".{key}.") and listing(cache / "processed") == [half]
    assert writing.parent.name == half
    data = load_dataset(FolderSource(root), cache_dir=cache)
    assert listing(cache / "processed") == [key]
    assert manifest_problem(cache / "processed" / key) is None
    assert_same_data(data, load_dataset(FolderSource(root), use_cache=False))


class MarkingSource(FolderSource):
    """A FolderSource that appends a line to ``<path>/loads.txt`` per load (any process)."""

    def load(self):
        with open(Path(self.path) / "loads.txt", "a") as f:
            f.write("load\n")
        time.sleep(0.5)  # widens the race window the lock must close
        return super().load()


def _load_in_child(root: str, cache: str, out: str, barrier) -> None:
    barrier.wait()
    data = load_dataset(MarkingSource(Path(root)), cache_dir=cache)
    data.interactions.to_csv(out, index=False)


def test_two_processes_on_a_fresh_cache_build_one_entry(tmp_path):
    root = write_folder(tmp_path / "d")
    cache = tmp_path / "cache"
    outs = [tmp_path / f"out{i}.csv" for i in range(2)]
    args = [(str(root), str(cache), str(out)) for out in outs]
    procs = run_together(_load_in_child, args)
    assert [p.exitcode for p in procs] == [0, 0]
    assert (root / "loads.txt").read_text().splitlines() == ["load"]
    key = cache_key(MarkingSource(root))
    assert listing(cache / "processed") == [key]
    assert manifest_problem(cache / "processed" / key) is None
    assert outs[0].read_text() == outs[1].read_text()
    data = data_cache.read_processed(cache / "processed" / key)
    pd.testing.assert_frame_equal(pd.read_csv(outs[0]), data.interactions, check_dtype=False)


# ------------------------------------------------------------------ permissions


def test_entry_folders_get_the_mode_of_the_files_in_them(tmp_path):
    source = FolderSource(write_folder(tmp_path / "d"))
    old = os.umask(0o022)
    try:
        load_dataset(source, cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    entry = tmp_path / "cache" / "processed" / cache_key(source)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in [entry, *entry.iterdir()]}
    assert modes == {
        entry.name: "0o755",
        "interactions.parquet": "0o644",
        "items.parquet": "0o644",
        "manifest.json": "0o644",
        "meta.json": "0o644",
        "users.parquet": "0o644",
    }


# ---------------------------------------------------------------------- real data


def test_real_ml100k_cached(data_root, tmp_path):
    source = AtomicSource(data_root / "ml-100k-kg" / "ml-100k_recbole", "ml-100k")
    data = load_dataset(source, cache_dir=tmp_path)
    again = load_dataset(source, cache_dir=tmp_path)
    assert_same_data(data, again)
    assert (data.num_users, data.num_items, len(data.interactions)) == (943, 1_682, 100_000)
    assert data.users["user"].iloc[0] == "1" and data.items["item"].iloc[0] == "1"
    assert len(data.kg) == 91_631 and len(data.item_entity) == 1_598
    assert data.items["movie_title"].iloc[0] == "Toy Story"

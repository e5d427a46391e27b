"""The build-once cache utility: one build per key across processes, nothing half-written."""

import json
import multiprocessing
import os
import time
from pathlib import Path

import filelock
import pytest

from gnnrec.utils import cache as cache_module
from gnnrec.utils import io
from gnnrec.utils.cache import cached_dir, cached_file, file_lock


def write_dir(value: dict):
    def build(tmp: Path) -> dict:
        (tmp / "value.json").write_text(json.dumps(value))
        return value

    return build


def read_dir(path: Path) -> dict | None:
    file = path / "value.json"
    return json.loads(file.read_text()) if file.is_file() else None


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".lock")


def test_cached_dir_builds_once_then_loads(tmp_path):
    entry = tmp_path / "processed" / "key"
    first = cached_dir(entry, write_dir({"a": 1}), read_dir)
    assert (first.value, first.path, first.computed) == ({"a": 1}, entry, True)
    second = cached_dir(entry, write_dir({"a": 2}), read_dir)
    assert (second.value, second.computed) == ({"a": 1}, False)
    assert visible(entry.parent) == ["key"]
    assert oct(entry.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def test_cached_file_builds_once_then_loads(tmp_path):
    entry = tmp_path / "emb" / "items.txt"

    def build(tmp: Path) -> str:
        tmp.write_text("vectors")
        return "built"

    first = cached_file(entry, build, lambda p: p.read_text())
    assert (first.value, first.computed) == ("built", True)
    second = cached_file(entry, build, lambda p: p.read_text())
    assert (second.value, second.computed) == ("vectors", False)
    assert visible(entry.parent) == ["items.txt"]
    assert oct(entry.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_failed_build_leaves_nothing(tmp_path, kind):
    def build(tmp: Path):
        (tmp / "half.json" if kind == "dir" else tmp).write_text("half")
        raise OSError("disk full")

    call = cached_dir if kind == "dir" else cached_file
    with pytest.raises(OSError, match="disk full"):
        call(tmp_path / "entry", build, lambda p: "never")
    assert visible(tmp_path) == []


def test_rejected_entry_is_rebuilt_and_replaced(tmp_path):
    entry = tmp_path / "key"
    entry.mkdir()
    (entry / "stale.txt").write_text("from an older run")
    loads = []

    def load(path: Path) -> dict | None:
        loads.append(path)
        return read_dir(path)

    result = cached_dir(entry, write_dir({"fresh": True}), load)
    assert (result.value, result.computed) == ({"fresh": True}, True)
    assert sorted(p.name for p in entry.iterdir()) == ["value.json"]
    # The stale entry is loaded once, not again under the lock (it did not change).
    assert loads == [entry]


def test_entry_stored_by_another_writer_first_is_kept(tmp_path, monkeypatch):
    entry = tmp_path / "key"
    real_rename = os.rename

    def rename_after_other_writer(src, dst):
        other = Path(dst)
        other.mkdir()
        (other / "value.json").write_text(json.dumps({"other": 1}))
        return real_rename(src, dst)

    monkeypatch.setattr(cache_module.os, "rename", rename_after_other_writer)
    result = cached_dir(entry, write_dir({"mine": 1}), read_dir)
    assert result.computed and result.value == {"mine": 1}
    assert read_dir(entry) == {"other": 1}
    assert visible(tmp_path) == ["key"]


def test_lock_timeout_names_the_lock(tmp_path):
    lock = tmp_path / "locks" / "key.lock"
    with file_lock(lock), pytest.raises(filelock.Timeout, match="key.lock"):
        cached_dir(tmp_path / "key", write_dir({}), read_dir, lock=lock, timeout=0.2)
    assert not (tmp_path / "key").exists()


def test_io_file_lock_is_the_cache_lock():
    assert io.file_lock is file_lock


def _build_in_child(entry: str, marker: str, barrier, out: str) -> None:
    barrier.wait()

    def build(tmp: Path) -> dict:
        with open(marker, "a") as f:
            f.write("build\n")
        time.sleep(0.5)  # widens the race window the lock must close
        return write_dir({"pid": os.getpid()})(tmp)

    result = cached_dir(entry, build, read_dir, lock=Path(entry).parent / "locks" / "k.lock")
    Path(out).write_text(json.dumps(result.value))


def test_two_processes_build_an_entry_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    marker, outs = tmp_path / "builds.txt", [tmp_path / f"out{i}.json" for i in range(2)]
    entry = tmp_path / "cache" / "key"
    procs = [
        ctx.Process(target=_build_in_child, args=(str(entry), str(marker), barrier, str(out)))
        for out in outs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert marker.read_text().splitlines() == ["build"]
    values = [json.loads(out.read_text()) for out in outs]
    assert values[0] == values[1] == read_dir(entry)
    assert values[0]["pid"] in [p.pid for p in procs]

"""The build-once cache utility: one build per key across processes, nothing half-written."""

import json
import os
import struct
import time
from pathlib import Path

import filelock
import pytest

from gnnrec.utils import cache as cache_module
from gnnrec.utils import io
from gnnrec.utils.cache import (
    cached_dir,
    cached_file,
    file_lock,
    leftover_temporaries,
    manifest_problem,
    remove_leftover_temporaries,
    write_manifest,
)
from tests.processes import kill_when_writing, run_together


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
    write_manifest(entry)  # whole, but ``load`` rejects it
    loads = []

    def load(path: Path) -> dict | None:
        loads.append(path)
        return read_dir(path)

    result = cached_dir(entry, write_dir({"fresh": True}), load)
    assert (result.value, result.computed) == ({"fresh": True}, True)
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json", "value.json"]
    # The stale entry is loaded once, not again under the lock (it did not change).
    assert loads == [entry]
    assert visible(tmp_path) == ["key"]


def test_entry_without_a_manifest_is_rebuilt_without_being_loaded(tmp_path):
    entry = tmp_path / "key"
    entry.mkdir()
    (entry / "value.json").write_text(json.dumps({"old": True}))  # an older gnnrec's entry
    loads = []

    def load(path: Path) -> dict | None:
        loads.append(path)
        return read_dir(path)

    with pytest.warns(UserWarning) as record:
        result = cached_dir(entry, write_dir({"fresh": True}), load)
    assert [str(w.message) for w in record] == [
        f"cache entry {entry} is damaged: it has no manifest.json (written by an older "
        "gnnrec, or changed by hand); rebuilding it"
    ]
    assert (result.value, result.computed, loads) == ({"fresh": True}, True, [])
    assert cached_dir(entry, write_dir({}), load).value == {"fresh": True}
    assert loads == [entry]


def test_entry_stored_by_another_writer_first_is_kept(tmp_path, monkeypatch):
    entry = tmp_path / "key"
    real_rename = os.rename

    def rename_after_other_writer(src, dst):
        other = Path(dst)
        other.mkdir()
        (other / "value.json").write_text(json.dumps({"other": 1}))
        write_manifest(other)
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


def _build_in_child(entry: str, marker: str, out: str, barrier) -> None:
    barrier.wait()

    def build(tmp: Path) -> dict:
        with open(marker, "a") as f:
            f.write("build\n")
        time.sleep(0.5)  # widens the race window the lock must close
        return write_dir({"pid": os.getpid()})(tmp)

    result = cached_dir(entry, build, read_dir, lock=Path(entry).parent / "locks" / "k.lock")
    Path(out).write_text(json.dumps(result.value))


def test_two_processes_build_an_entry_once(tmp_path):
    marker, outs = tmp_path / "builds.txt", [tmp_path / f"out{i}.json" for i in range(2)]
    entry = tmp_path / "cache" / "key"
    args = [(str(entry), str(marker), str(out)) for out in outs]
    procs = run_together(_build_in_child, args)
    assert [p.exitcode for p in procs] == [0, 0]
    assert marker.read_text().splitlines() == ["build"]
    values = [json.loads(out.read_text()) for out in outs]
    assert values[0] == values[1] == read_dir(entry)
    assert values[0]["pid"] in [p.pid for p in procs]


# ------------------------------------------------------------------ manifests


def _entry(tmp_path: Path) -> Path:
    entry = tmp_path / "entry"
    (entry / "sub").mkdir(parents=True)
    (entry / "a.bin").write_bytes(bytes(range(256)))
    (entry / "sub" / "b.txt").write_text("hello")
    return entry


def test_manifest_records_every_file_with_size_and_sha256(tmp_path):
    entry = _entry(tmp_path)
    manifest = write_manifest(entry)
    assert manifest == json.loads((entry / "manifest.json").read_text())
    assert manifest == {
        "format": "gnnrec-cache-manifest-v1",
        "files": {
            "a.bin": {
                "size": 256,
                "sha256": "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880",
            },
            "sub/b.txt": {
                "size": 5,
                "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            },
        },
    }
    assert manifest_problem(entry) is None


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x80
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            lambda e: _flip(e / "a.bin", 100),
            "a.bin has SHA-256 fc0bf63720930ae4..., manifest.json records 40aff2e9d2d8922e...",
        ),
        (
            lambda e: (e / "sub" / "b.txt").write_text("hell"),
            "sub/b.txt has 4 bytes, manifest.json records 5",
        ),
        (lambda e: (e / "a.bin").unlink(), "a.bin is missing"),
        (lambda e: (e / "sub" / "c.txt").write_text("x"), "sub/c.txt is not in manifest.json"),
        (
            lambda e: ((e / "a.bin").unlink(), (e / "extra").write_text("")),
            "a.bin is missing; extra is not in manifest.json",
        ),
        (
            lambda e: (e / "manifest.json").unlink(),
            "it has no manifest.json (written by an older gnnrec, or changed by hand)",
        ),
        (
            lambda e: (e / "manifest.json").write_text("{"),
            "its manifest.json is unreadable (JSONDecodeError: Expecting property name "
            "enclosed in double quotes: line 1 column 2 (char 1))",
        ),
        (
            lambda e: (e / "manifest.json").write_text('{"format": "v0", "files": {}}'),
            "its manifest.json is unreadable (ValueError: format 'v0', expected "
            "'gnnrec-cache-manifest-v1')",
        ),
    ],
    ids=["flipped", "truncated", "missing", "extra", "both", "no_manifest", "bad_json", "format"],
)
def test_manifest_problem_says_what_is_wrong(damage, problem, tmp_path):
    entry = _entry(tmp_path)
    write_manifest(entry)
    damage(entry)
    assert manifest_problem(entry) == problem


def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path):
    entry = tmp_path / "key"
    first = cached_dir(entry, write_dir({"a": 1}), read_dir)
    (entry / "value.json").write_text(json.dumps({"a": 2}))  # same size, other bytes
    with pytest.warns(UserWarning) as record:
        again = cached_dir(entry, write_dir({"a": 1}), read_dir)
    (message,) = [str(w.message) for w in record]
    assert message.startswith(f"cache entry {entry} is damaged: value.json has SHA-256 ")
    assert message.endswith("; rebuilding it")
    assert (first.value, again.value, again.computed, read_dir(entry)) == (
        {"a": 1},
        {"a": 1},
        True,
        {"a": 1},
    )


# ------------------------------------------------------------------ temporaries


def test_leftover_temporaries_of_the_entry_only_are_removed_under_the_lock(tmp_path, caplog):
    folder = tmp_path / "emb"
    folder.mkdir()
    entry = folder / "items.npy"
    mine = [
        folder / ".items.npy.0123456789abcdef.tmp",
        folder / ".items.npy.k3j_9xq2.tmp",  # tempfile's name, written before
    ]
    (folder / ".items.npy.fedcba9876543210.tmp").mkdir()  # a folder counts too
    mine.insert(1, folder / ".items.npy.fedcba9876543210.tmp")
    not_mine = [
        ".items.npy.lock",
        ".items.npy.0123456789abcdef.tmp.x",
        ".items.npy.0123.tmp",
        ".items.npz.0123456789abcdef.tmp",
        ".other.npy.0123456789abcdef.tmp",
        "items.npy.0123456789abcdef.tmp",
    ]
    for path in [*mine, *(folder / n for n in not_mine)]:
        if not path.exists():
            path.write_text("half")
    assert leftover_temporaries(entry) == sorted(mine)

    def build(tmp: Path) -> str:
        assert leftover_temporaries(entry) == [tmp]  # removed before the build starts
        tmp.write_text("vectors")
        return "built"

    with caplog.at_level("WARNING", logger="gnnrec.utils.cache"):
        assert cached_file(entry, build, lambda p: p.read_text()).computed
    assert sorted(caplog.messages) == sorted(
        f"removed {p}, left by a write of {entry} that did not finish" for p in mine
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["items.npy", "items.npy.lock", *not_mine]
    )
    assert remove_leftover_temporaries(entry) == []


def _write_then_hang(entry: str, marker: str, kind: str) -> None:
    def build(tmp: Path) -> None:
        if kind == "dir":
            (tmp / "half.bin").write_bytes(b"x" * 1000)
        else:
            tmp.write_bytes(b"x" * 1000)
        Path(marker).write_text(str(tmp))
        time.sleep(600)

    (cached_dir if kind == "dir" else cached_file)(entry, build, lambda p: "loaded")


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_write_killed_midway_is_cleaned_by_the_next_build(kind, tmp_path):
    entry, marker = tmp_path / "cache" / "key", tmp_path / "writing.txt"
    half = kill_when_writing(_write_then_hang, (str(entry), str(marker), kind), marker)
    assert visible(entry.parent) == [half.name]
    built = (cached_dir if kind == "dir" else cached_file)(entry, _fill(kind), _read(kind))
    assert (built.value, built.computed) == ("whole", True)
    assert visible(entry.parent) == ["key"]
    again = (cached_dir if kind == "dir" else cached_file)(entry, _fill(kind), _read(kind))
    assert (again.value, again.computed) == ("whole", False)


def _fill(kind: str):
    def build(tmp: Path) -> str:
        (tmp / "value.txt" if kind == "dir" else tmp).write_text("whole")
        return "whole"

    return build


def _read(kind: str):
    return lambda p: (p / "value.txt" if kind == "dir" else p).read_text()


# ------------------------------------------------------------------ permissions


ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x04, 0x10, 0x20


def _set_default_acl(folder: Path, group: int, other: int) -> None:
    """Give ``folder`` a default POSIX ACL (``setfacl -d``) through its extended attribute."""
    entries = [(ACL_USER_OBJ, 7), (ACL_GROUP_OBJ, group), (ACL_MASK, group), (ACL_OTHER, other)]
    blob = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", t, p, 0xFFFFFFFF) for t, p in entries
    )
    try:
        os.setxattr(folder, "system.posix_acl_default", blob)
    except OSError as err:
        pytest.skip(f"{folder}: no POSIX ACLs on this file system ({err})")


def _modes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): oct(p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.suffix != ".lock"
    }


@pytest.mark.parametrize("setting", ["umask", "default_acl"])
def test_entries_get_the_modes_of_other_files_and_folders(setting, tmp_path, monkeypatch):
    """Entries get what ``open``/``mkdir`` would give there; the umask is never changed."""
    root = tmp_path / "shared"
    root.mkdir()
    old = os.umask(0o022 if setting == "umask" else 0o077)
    try:
        if setting == "default_acl":  # a cache shared with a group, as ``setfacl -d -m g::rwx``
            _set_default_acl(root, group=7, other=0)

        def no_umask(mask):
            raise AssertionError("the cache must not change the process umask")

        monkeypatch.setattr(os, "umask", no_umask)
        cached_dir(root / "processed" / "key", _fill("dir"), _read("dir"))
        cached_file(root / "embeddings" / "items.npy", _fill("file"), _read("file"))
        (root / "plain").mkdir()
        (root / "plain" / "file.txt").write_text("made by open()")
    finally:
        monkeypatch.undo()
        os.umask(old)
    folder, file = ("0o755", "0o644") if setting == "umask" else ("0o770", "0o660")
    assert _modes(root) == {
        "embeddings": folder,
        "embeddings/items.npy": file,
        "plain": folder,
        "plain/file.txt": file,
        "processed": folder,
        "processed/key": folder,
        "processed/key/manifest.json": file,
        "processed/key/value.txt": file,
    }

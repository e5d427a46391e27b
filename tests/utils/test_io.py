import pickle

import pytest
import torch

from gnnrec.utils.io import atomic_write, load_checkpoint, save_checkpoint, write_json


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    target = write_json(tmp_path / "m.json", {"a": 1})
    write_json(target, {"b": 2})
    assert target.read_text().strip() == '{\n  "b": 2\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_checkpoints_round_trip_and_refuse_pickled_objects(tmp_path):
    save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(2), "epoch": 3, "hist": [{"loss": 0.5}]})
    state = load_checkpoint(tmp_path / "ok.pt")
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.ones(2))
    torch.save({"evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")

import pickle

import pytest
import torch

from gnnrec.errors import GnnrecError
from gnnrec.utils.io import (
    CHECKSUM_KEY,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    state_digest,
    write_json,
)


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


FIX = "Restore an intact copy, or delete it and train again (without trainer.resume)"


def test_checkpoints_round_trip_and_refuse_pickled_objects(tmp_path, capsys):
    save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(2), "epoch": 3, "hist": [{"loss": 0.5}]})
    state = load_checkpoint(tmp_path / "ok.pt")
    assert state == {"w": state["w"], "epoch": 3, "hist": [{"loss": 0.5}]}  # no checksum key
    assert torch.equal(state["w"], torch.ones(2))
    path = tmp_path / "evil.pt"
    torch.save({"evil": Payload()}, path)
    with pytest.raises(GnnrecError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"checkpoint {path} cannot be read (UnpicklingError: Weights only load failed): the "
        f"file is truncated or damaged, or not a gnnrec checkpoint. {FIX}"
    )
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)
    assert "this must never run" not in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def training_state():
    """A checkpoint like the trainer's: weights, Adam state, a generator, numbers, history."""
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 32)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 64)).sum().backward()
    opt.step()
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "sampler": {"generator": torch.Generator().manual_seed(3).get_state()},
        "epoch": 4,
        "best_value": float("nan"),
        "history": [{"epoch": 0, "train/loss": 0.25}],
        "extra": (torch.tensor([True, False]), torch.tensor(1.5, dtype=torch.bfloat16)),
    }


def test_the_digest_survives_a_round_trip_and_sees_every_value(tmp_path):
    state = training_state()
    save_checkpoint(tmp_path / "a.pt", state)
    raw = torch.load(tmp_path / "a.pt", weights_only=True)
    assert raw[CHECKSUM_KEY] == state_digest(state)
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert state_digest(loaded) == state_digest(state) and CHECKSUM_KEY not in loaded
    changed = training_state()
    changed["model"]["weight"][3, 5] += 1e-6
    assert state_digest(changed) != state_digest(state)
    changed = {**training_state(), "epoch": 5}
    assert state_digest(changed) != state_digest(state)
    changed = {**training_state(), "history": [{"epoch": 0, "train/loss": 0.26}]}
    assert state_digest(changed) != state_digest(state)
    with pytest.raises(ValueError, match="checkpoint key 'sha256' is reserved"):
        save_checkpoint(tmp_path / "b.pt", {CHECKSUM_KEY: "x"})


def test_a_flipped_byte_in_a_checkpoint_fails_with_its_path(tmp_path):
    path = tmp_path / "last.pt"
    state = training_state()
    save_checkpoint(path, state)
    data = bytearray(path.read_bytes())
    weights = state["model"]["weight"].numpy().tobytes()
    at = bytes(data).index(weights) + 100  # a byte inside the stored weight matrix
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    # torch alone loads it, with one weight changed
    raw = torch.load(path, weights_only=True)
    assert not torch.equal(raw["model"]["weight"], state["model"]["weight"])
    with pytest.raises(GnnrecError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"checkpoint {path} is damaged: its contents do not match the SHA-256 stored in it. {FIX}"
    )


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_a_truncated_checkpoint_fails_with_its_path(tmp_path, keep):
    path = tmp_path / "best.pt"
    save_checkpoint(path, training_state())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(GnnrecError) as err:
        load_checkpoint(path)
    message = str(err.value)
    prefix = f"checkpoint {path} cannot be read ("
    suffix = f"): the file is truncated or damaged, or not a gnnrec checkpoint. {FIX}"
    assert message.startswith(prefix) and message.endswith(suffix)
    reason = message[len(prefix) : -len(suffix)]
    # torch's own error, first sentence only (a bare EOFError for an empty file)
    assert reason == ("EOFError" if keep == 0.0 else "OSError: [Errno 22] Invalid argument")


def test_a_checkpoint_of_random_bytes_is_not_read(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a zip archive at all")
    with pytest.raises(GnnrecError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"checkpoint {path} cannot be read (UnpicklingError: Weights only load failed): the "
        f"file is truncated or damaged, or not a gnnrec checkpoint. {FIX}"
    )


def test_a_checkpoint_without_checksum_loads_with_a_warning(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(2), "epoch": 1}, path)
    with pytest.warns(UserWarning) as record:
        state = load_checkpoint(path)
    assert [str(w.message) for w in record] == [
        f"checkpoint {path} has no checksum (written before checkpoints carried one); "
        "loaded unverified"
    ]
    assert state["epoch"] == 1

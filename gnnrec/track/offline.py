"""Read a W&B offline run (``offline-run-*/run-*.wandb``) back without the network.

The file is a LevelDB-style log of protobuf ``Record`` messages: a 7-byte header, then
32 KiB blocks of chunks, each with a 7-byte header (CRC32, length, type). Files the
run saved (tables under ``media/table/``, ``per_user.parquet``) are in the run
folder's ``files/``.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["OfflineArtifact", "OfflineRun", "is_complete", "read_offline_run", "wait_complete"]

_BLOCK = 32768
_FILE_HEADER = 7
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineArtifact:
    """An artifact the run logged.

    Attributes:
        name: Artifact name (e.g. ``model-<run id>``).
        type: Artifact type (e.g. ``model``).
        aliases: Its aliases (``latest``, ``best``, ...).
        metadata: Its metadata.
        files: Path inside the artifact -> the local file ``wandb sync`` uploads.
    """

    name: str
    type: str
    aliases: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class OfflineRun:
    """What a run logged.

    Attributes:
        config: Config keys as logged (gnnrec logs flat dotted keys,
            ``"model.embedding_dim"``, plus ``overrides`` and ``seed``).
        history: One dict per logged step (per epoch). Media (tables) are dicts, e.g.
            ``row["examples"] == {"_type": "table-file", "path": "media/table/...", ...}``.
        summary: Final values (gnnrec: the ``metrics.json`` keys, plus W&B's ``_*``).
        path: The run folder (``offline-run-*``).
        files_dir: Its ``files/`` folder: saved files and ``media/table/*.table.json``.
        run_id: W&B run id.
        project: W&B project.
        group: Run group (empty if none).
        job_type: Job type.
        tags: Tags.
        step_metrics: Metric name or glob -> the metric used as its x axis
            (``{"*": "epoch"}``).
        artifacts: Artifacts logged by the run.
        saved_files: Paths (inside ``files_dir``) the run registered with ``run.save``.
    """

    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    files_dir: Path | None = None
    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    step_metrics: dict[str, str] = field(default_factory=dict)
    artifacts: list[OfflineArtifact] = field(default_factory=list)
    saved_files: list[str] = field(default_factory=list)

    def table(self, key: str) -> pd.DataFrame:
        """The last table logged under ``key`` (e.g. ``"examples"``), as a DataFrame."""
        for row in reversed([self.summary, *self.history]):
            value = row.get(key)
            if isinstance(value, dict) and value.get("_type") == "table-file":
                return self._read_table(value["path"])
        logged = sorted(
            {
                k
                for row in self.history
                for k, v in row.items()
                if isinstance(v, dict) and v.get("_type") == "table-file"
            }
        )
        raise KeyError(f"no table {key!r} in run {self.path}; tables logged: {logged}")

    def _read_table(self, relative: str) -> pd.DataFrame:
        if self.files_dir is None:
            raise FileNotFoundError("this OfflineRun has no files_dir to read tables from")
        path = self.files_dir / relative
        if not path.is_file():
            raise FileNotFoundError(f"table file {path} is missing from the run folder")
        data = json.loads(path.read_text())
        return pd.DataFrame(data["data"], columns=data["columns"])


def _records(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run log (missing ':W&B' header)")
    pos, pending = _FILE_HEADER, b""
    while pos + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK_HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind == 0 and length == 0:
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0
            continue
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _log_file(path: Path) -> Path | None:
    if path.is_dir():
        logs = sorted(path.glob("*.wandb"))
        return logs[0] if logs else None
    return path if path.is_file() else None


def is_complete(path: str | Path) -> bool:
    """Whether an offline run's log ends with its ``exit`` record (the run finished)."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    log_file = _log_file(Path(path))
    if log_file is None:
        return False
    last = None
    for raw in _records(log_file.read_bytes()):
        last = raw
    if last is None:
        return False
    record = pb.Record()
    try:
        record.ParseFromString(last)
    except DecodeError:  # the last record is still being written
        return False
    return record.WhichOneof("record_type") == "exit"


def wait_complete(path: str | Path, timeout_s: float = 30.0) -> bool:
    """Wait until :func:`is_complete`; ``False`` if ``timeout_s`` passed first.

    W&B's ``finish()`` can return while its service still writes an offline run's log;
    callers that read the run right away wait here first.
    """
    deadline = time.monotonic() + timeout_s
    while not is_complete(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse an offline run folder (``.../wandb/offline-run-*``) or its ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        logs = sorted(path.glob("*.wandb"))
        if not logs:
            raise FileNotFoundError(
                f"no .wandb log in {path}; pass a folder like <run>/wandb/offline-run-*"
            )
        path = logs[0]
    folder = path.parent
    out = OfflineRun(path=folder, files_dir=folder / "files")
    for raw in _records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            _update_config(out.config, record.config.update)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item, json.loads(item.value_json))
            out.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(out.summary, item, json.loads(item.value_json))
            for item in record.summary.remove:
                _pop(out.summary, item)
        elif kind == "run":
            run = record.run
            _update_config(out.config, run.config.update)
            out.run_id, out.project = run.run_id, run.project
            out.group, out.job_type, out.tags = run.run_group, run.job_type, list(run.tags)
        elif kind == "metric":
            metric = record.metric
            if metric.step_metric:
                out.step_metrics[metric.name or metric.glob_name] = metric.step_metric
        elif kind == "files":
            out.saved_files.extend(f.path for f in record.files.files)
        elif kind == "artifact":
            out.artifacts.append(_artifact(record.artifact))
    return out


def _update_config(config: dict[str, Any], updates) -> None:
    for item in updates:
        value = json.loads(item.value_json)
        config[item.key or ".".join(item.nested_key)] = (
            value.get("value", value) if _is_wrapped(value) else value
        )


def _is_wrapped(value: Any) -> bool:
    """Older clients log config values as ``{"desc": ..., "value": ...}``."""
    return isinstance(value, dict) and "value" in value and set(value) <= {"desc", "value"}


def _artifact(record) -> OfflineArtifact:
    return OfflineArtifact(
        name=record.name,
        type=record.type,
        aliases=list(record.aliases),
        metadata=json.loads(record.metadata) if record.metadata else {},
        files={entry.path: Path(entry.local_path) for entry in record.manifest.contents},
    )


def _set(target: dict[str, Any], item, value: Any) -> None:
    """``target[key] = value``; a nested key (``["examples", "path"]``) fills nested dicts."""
    if item.key:
        target[item.key] = value
        return
    *parents, last = item.nested_key
    for name in parents:
        child = target.get(name)
        if not isinstance(child, dict):
            child = target[name] = {}
        target = child
    target[last] = value


def _pop(target: dict[str, Any], item) -> None:
    keys = [item.key] if item.key else list(item.nested_key)
    for name in keys[:-1]:
        target = target.get(name)
        if not isinstance(target, dict):
            return
    target.pop(keys[-1], None)

"""Read a W&B offline run (``offline-run-*/run-*.wandb``) back without the network.

The file is a LevelDB-style log of protobuf ``Record`` messages: a 7-byte header, then
32 KiB blocks of chunks, each with a 7-byte header (CRC32, length, type).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OfflineRun", "read_offline_run"]

_BLOCK = 32768
_FILE_HEADER = 7
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What a run logged: its config, per-step history rows and final summary."""

    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


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


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse an offline run folder (or its ``.wandb`` file)."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        logs = sorted(path.glob("*.wandb"))
        if not logs:
            raise FileNotFoundError(f"no .wandb log in {path}")
        path = logs[0]
    out = OfflineRun()
    for raw in _records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                value = json.loads(item.value_json)
                out.config[item.key] = (
                    value.get("value", value) if isinstance(value, dict) else value
                )
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                out.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "run":
            for item in record.run.config.update:
                value = json.loads(item.value_json)
                out.config[item.key] = (
                    value.get("value", value) if isinstance(value, dict) else value
                )
    return out


def _key(item) -> str:
    return item.key if item.key else "/".join(item.nested_key)

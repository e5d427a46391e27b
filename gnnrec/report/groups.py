"""What ran: a run's resolved config and config-group choices, labels and baseline matching.

A run's *group key* is its resolved config (``.hydra/config.yaml``, flattened to dotted
keys) without the keys of :data:`IGNORED_KEYS` (the seed and location/infrastructure
settings), without keys that merely follow the seed or the device (raw value ``${seed}``, e.g.
``data.split.seed`` unless it is fixed, or ``${device}``) and without keys whose value
is built from a location (``${paths...}``, ``${hydra:...}``). Runs with equal keys are one group, however
their command lines spelt it. A group's *label* shows only what differs between groups:
a config-group choice (``model=lightgcn``) where the choice differs, and dotted keys
(``model.num_layers=2``) otherwise.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gnnrec.track.trackers import resolve_value

__all__ = [
    "IGNORED_KEYS",
    "config_choices",
    "find_label",
    "format_value",
    "group_labels",
    "resolved_config",
]

IGNORED_KEYS = (
    "seed",
    "paths",
    "hydra",
    "tracker",
    "task_name",
    "device",
    "trainer.device",
    "trainer.progress",
    "trainer.resume",
    "trainer.resume_mismatch",
    "trainer.checkpoint",
    "test_curve_every",
    "overwrite",
)
"""Config keys (and everything under them) that never make a group: the seed (the
repetition itself), where a run is written, logged or run (``paths``, ``hydra``,
``tracker``, ``task_name``, the device), progress bars, resuming, checkpoint files,
extra learning-curve evaluations and replacing an earlier run's folder, none of which
changes a result."""

_MISSING = object()


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in ignore)


def _location_or_seed(raw: Any) -> bool:
    text = str(raw)
    return text.strip() in ("${seed}", "${device}") or "${paths." in text or "${hydra:" in text


def resolved_config(path: Path, ignore: Iterable[str] = IGNORED_KEYS) -> dict[str, Any]:
    """The flat resolved config of ``path`` (a ``.hydra/config.yaml``) that defines a group.

    Values are resolved one by one; one that cannot be resolved here keeps its
    ``${...}`` text. Keys under ``ignore``, keys that follow the seed and keys built
    from locations are left out (see the module docstring).
    """
    import gnnrec.config  # noqa: F401  (registers ${gnnrec_root:} and ${study_seed:})

    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path} must hold a mapping (the composed config)")
    raw = OmegaConf.to_container(cfg, resolve=False)
    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if _ignored(name, ignore):
                continue
            if isinstance(value, Mapping) and value:
                walk(value, f"{name}.")
                continue
            if _location_or_seed(value):
                continue
            if "${" in str(value):
                value = resolve_value(cfg, name, value)
            out[name] = value

    walk(raw, "")
    return out


def config_choices(run_dir: Path, overrides: Sequence[str]) -> dict[str, str]:
    """Config-group choices of a run (``{"model": "lightgcn", ...}``).

    Hydra's record (``.hydra/hydra.yaml``, written by ``gnnrec-train``); else the
    choices the recorded overrides compose to (runs of :func:`gnnrec.api.train`); else,
    if they no longer compose, the group overrides among them (``model=mf``).
    """
    path = run_dir / ".hydra" / "hydra.yaml"
    if path.is_file():
        choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices")
        if choices is not None:
            return {str(k): str(v) for k, v in choices.items() if "/" not in str(k)}
    return dict(_composed_choices(tuple(o for o in overrides if not o.startswith("hydra"))))


@lru_cache(maxsize=256)
def _composed_choices(overrides: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from hydra import compose, initialize_config_dir

    from gnnrec.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        found = cfg.hydra.runtime.choices
        return tuple((str(k), str(v)) for k, v in found.items() if "/" not in str(k))
    except Exception:  # the config tree changed since the run: its group overrides
        out = []
        for o in overrides:
            key, sep, value = o.lstrip("+~").partition("=")
            if sep and "." not in key and (CONFIG_DIR / key).is_dir():
                out.append((key, value))
        return tuple(out)


def format_value(value: Any) -> str:
    """A value as an override writes it: ``true``, ``null``, ``[10,20]``, ``0.001``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def group_labels(
    configs: Sequence[Mapping[str, Any]],
    choices: Sequence[Mapping[str, str]],
    overrides: Sequence[Sequence[str]],
) -> list[str]:
    """One label per group: the choices and keys that differ between the groups.

    A config group whose choice differs between groups (and whose keys differ) shows as
    ``group=choice``; its keys show only where they differ among groups of the same
    choice. A single group is labelled with its recorded overrides.
    """
    if len(configs) == 1:
        return [" ".join(overrides[0]) or "(defaults)"]
    order = list(dict.fromkeys(k for c in configs for k in c))
    differing = [k for k in order if len({_json(c.get(k, _MISSING)) for c in configs}) > 1]
    chosen = {
        g
        for g in {k.split(".", 1)[0] for k in differing if "." in k}
        if len({ch.get(g) for ch in choices}) > 1 and all(g in ch for ch in choices)
    }
    labels = []
    for config, choice in zip(configs, choices, strict=True):
        tokens: list[str] = []
        for key in differing:
            group = key.split(".", 1)[0]
            if group in chosen:
                token = f"{group}={choice[group]}"
                if token not in tokens:
                    tokens.append(token)
                same = [
                    c for c, ch in zip(configs, choices, strict=True) if ch[group] == choice[group]
                ]
                if len({_json(c.get(key, _MISSING)) for c in same}) == 1:
                    continue
            if key in config:
                tokens.append(f"{key}={format_value(config[key])}")
        labels.append(" ".join(tokens) or "(defaults)")
    return labels


def _parse(value: str) -> Any:
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        return OverridesParser.create().parse_override(f"k={value}").value()
    except Exception:  # not Hydra override syntax: compare the text
        return value


def _option_target(group: str, option: str) -> Any:
    from gnnrec.config import CONFIG_DIR

    path = CONFIG_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return _MISSING
    node = OmegaConf.load(path)
    return node.get("_target_", _MISSING) if isinstance(node, DictConfig) else _MISSING


def _token_matches(token: str, config: Mapping[str, Any], choice: Mapping[str, str]) -> bool:
    key, _, value = token.lstrip("+").partition("=")
    if "." not in key:
        from gnnrec.config import CONFIG_DIR

        if (CONFIG_DIR / key).is_dir():
            if key in choice:
                return choice[key] == value
            target = _option_target(key, value)  # no recorded choice: the option's class
            return target is not _MISSING and config.get(f"{key}._target_") == target
    if key not in config:
        return False
    actual = config[key]
    return _parse(value) == actual or format_value(actual) == value


def find_label(runs: Sequence, name: str) -> str:
    """The group a ``--baseline`` string names.

    ``name`` may be a group label; override-like tokens (``model=lightgcn``,
    ``model.num_layers=2``, several separated by spaces), each of which must hold for
    exactly one group: a config-group choice is compared with the run's recorded choice
    (so ``model=lightgcn`` never matches ``model=lightgcn_text``), a dotted key with the
    resolved value; or a part of exactly one label (``pop``).

    Raises:
        ValueError: No group, or more than one, matches; the message lists the labels.
    """
    labels = list(dict.fromkeys(r.label for r in runs))
    if name in labels:
        return name
    first = {}
    for r in runs:
        first.setdefault(r.label, r)
    try:
        tokens = shlex.split(name)
    except ValueError:
        tokens = name.split()
    matches: list[str] = []
    if tokens and all("=" in t for t in tokens):
        matches = [
            label
            for label in labels
            if all(_token_matches(t, first[label].config, first[label].choices) for t in tokens)
        ]
    if not matches:
        matches = [label for label in labels if name in label]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(repr(label) for label in labels)
    if not matches:
        raise ValueError(f"baseline {name!r} matches no group; the groups are: {listing}")
    raise ValueError(
        f"baseline {name!r} is ambiguous, it is part of {len(matches)} labels "
        f"({'; '.join(map(repr, matches))}); give one exactly. The groups are: {listing}"
    )

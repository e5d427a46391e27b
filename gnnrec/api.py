"""Python API for notebooks and scripts: compose a config from overrides, run it in process.

    from gnnrec.api import train
    metrics = train(["experiment=cdr_amazon_movies", "model=lightgcn", "seed=1"])
    metrics["test/cold/ndcg@20"]

:func:`train` goes through the same :func:`gnnrec.run.run` as ``gnnrec-train`` and
leaves the same run folder behind (``metrics.json``, ``per_user.parquet``,
``history.json``, ``.hydra/config.yaml`` and ``.hydra/overrides.yaml``), so
``gnnrec-report`` reads runs launched from Python and from the command line alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from gnnrec.config import compose_config
from gnnrec.utils.io import atomic_write

__all__ = ["compose", "evaluate", "load_run_config", "train"]


def _as_list(overrides: Sequence[str] | str) -> list[str]:
    """Overrides as a list; one string is one override (``"model=mf"``), not characters."""
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def compose(overrides: Sequence[str] | str = ()) -> DictConfig:
    """The config ``gnnrec-train <overrides>`` would run (``conf/train.yaml``).

    ``overrides`` is a list of Hydra override strings, or one such string.
    """
    return compose_config(_as_list(overrides))


def _default_run_dir(cfg: DictConfig) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return Path(cfg.paths.log_dir) / str(cfg.task_name) / "runs" / stamp


def train(
    overrides: Sequence[str] | str = (),
    output_dir: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, float | str]:
    """Train and evaluate one configuration in this process; return its metrics.

    Args:
        overrides: Hydra override strings, as on the command line
            (``["model=mf", "seed=2", "trainer.max_epochs=5"]``), or one string.
        output_dir: The run folder; by default a new time-stamped folder under
            ``<paths.log_dir>/<task_name>/runs/``, as ``gnnrec-train`` makes.
        overwrite: Replace a finished run in ``output_dir`` (sets ``overwrite=true``).
            Without it a folder holding ``metrics.json`` is refused before anything in
            it is written, unless ``trainer.resume`` continues that run.

    Returns:
        The ``metrics.json`` contents: ``"<split>/<group>/<metric>@<k>"`` keys plus
        ``best_epoch``, ``epochs``, ``time/*`` and ``config_fingerprint`` (a string).

    Raises:
        ConfigError: ``output_dir`` holds a finished run (see ``overwrite``).
    """
    from gnnrec.run import run
    from gnnrec.track.run_folder import check_run_folder

    overrides = _as_list(overrides)
    cfg = compose(overrides)
    out = Path(output_dir) if output_dir is not None else _default_run_dir(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        if overwrite:
            cfg.overwrite = True
    check_run_folder(out, cfg.get("overwrite", False), cfg.trainer.get("resume"))
    hydra_dir = out / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    for name, node in (("config.yaml", cfg), ("overrides.yaml", OmegaConf.create(overrides))):
        text = OmegaConf.to_yaml(node)
        atomic_write(hydra_dir / name, lambda tmp, text=text: tmp.write_text(text))
    return run(cfg, output_dir=out)


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The config a run folder was launched with (``.hydra/config.yaml``).

    ``overrides`` are dotted ``key=value`` changes applied on top, for settings that
    do not change the result, such as ``paths.cache_dir`` on another machine.
    """
    run_dir = Path(run_dir)
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {run_dir} is not a run folder of gnnrec-train or "
            "gnnrec.api.train"
        )
    cfg = OmegaConf.load(path)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        _upgrade(cfg)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def _upgrade(cfg: DictConfig) -> None:
    """Bring a config saved by gnnrec 0.1 to the current layout, in place.

    0.1 had ``eval._target_: gnnrec.evaluate.Evaluator`` (now the
    :class:`~gnnrec.evaluate.Protocol`, same settings), no ``sampler`` group (its
    sampler was today's ``sampler=domain``), and ``trainer.monitor`` beside
    ``optimized_metric`` (one key now).
    """
    if cfg.eval.get("_target_") == "gnnrec.evaluate.Evaluator":
        cfg.eval._target_ = "gnnrec.evaluate.Protocol"
        cfg.eval.tasks = ["main", "cold_item"]
    if "sampler" not in cfg:
        cfg.sampler = compose_config().sampler
        cfg.sampler.seed = cfg.seed
    monitor = cfg.trainer.pop("monitor", None)
    if monitor is not None and cfg.get("optimized_metric") is not None:
        cfg.optimized_metric = monitor


def evaluate(
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    check: bool = True,
    tolerance: float = 1e-6,
) -> dict[str, float]:
    """Re-evaluate a finished run from its config and checkpoint; write ``per_user.parquet``.

    Rebuilds the run's data, split and model from ``.hydra/config.yaml``, loads
    ``checkpoints/best.pt`` (else the model of ``last.pt``; models without parameters,
    such as popularity, need none) with ``weights_only=True`` and evaluates the test
    split. Use it to add per-user metrics to runs made before they were saved, or to
    check that a saved result reproduces.

    Args:
        run_dir: A run folder (``metrics.json``, ``.hydra/``, ``checkpoints/``).
        overrides: Dotted ``key=value`` changes that leave the result unchanged
            (e.g. ``paths.cache_dir=...``).
        check: Compare the recomputed test metrics with ``metrics.json`` and raise
            if one differs by more than ``tolerance``.
        tolerance: Absolute tolerance of the check.

    Returns:
        The recomputed ``test/...`` metrics, with the group records ``run`` adds
        (``num_users`` 0 of an expected empty group, ``same_as`` of a repeat).
    """
    import json

    import pandas as pd
    import torch

    from gnnrec.nn.scoring import ranking_inputs
    from gnnrec.run import per_user_frame, prepare, trained_state

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    setup = prepare(cfg, "cpu")
    model = setup.model
    if model.trainable:
        model.load_state_dict(trained_state(run_dir)[0])
    model.eval()
    with torch.no_grad():
        emb = ranking_inputs(model())
    rows: list[pd.DataFrame] = []
    metrics = setup.protocol.evaluate("test", setup.tasks["test"], *emb, per_user=rows)
    for flag in setup.group_flags:  # as run() records them: empty groups, repeats
        if flag.split == "test":
            metrics.update(flag.records())
    saved_path = run_dir / "metrics.json"
    if check and saved_path.is_file():
        saved = json.loads(saved_path.read_text())
        diff = {
            k: (saved[k], v)
            for k, v in metrics.items()
            if k in saved and _differs(saved[k], v, tolerance)
        }
        if diff:
            key, (old, new) = next(iter(diff.items()))
            raise ValueError(
                f"{run_dir}: re-evaluation does not reproduce metrics.json ({len(diff)} keys "
                f"differ, e.g. {key}: saved {_show(old)}, recomputed {_show(new)}); the code, "
                "config defaults or data changed since the run"
            )
    per_user = per_user_frame(rows, setup.data, setup.split)
    atomic_write(run_dir / "per_user.parquet", lambda tmp: per_user.to_parquet(tmp, index=False))
    return metrics


def _differs(saved: object, new: object, tolerance: float) -> bool:
    """Numbers further apart than ``tolerance``; anything else (a group name) unequal."""
    if isinstance(saved, int | float) and isinstance(new, int | float):
        return not abs(saved - new) <= tolerance
    return saved != new


def _show(value: object) -> str:
    return f"{value:.6f}" if isinstance(value, float) else repr(value)


def _evaluate_main(argv: Sequence[str] | None = None) -> None:
    """``gnnrec-evaluate RUN_DIR ...``: re-evaluate saved runs (see :func:`evaluate`)."""
    import argparse

    from tqdm import tqdm

    parser = argparse.ArgumentParser(
        prog="gnnrec-evaluate",
        description="Re-evaluate finished runs from their config and checkpoint; write "
        "per_user.parquet and check the result against metrics.json.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run folders or their parents")
    parser.add_argument("--set", nargs="*", default=[], help="dotted key=value changes")
    parser.add_argument("--no-check", action="store_true", help="skip the metrics.json check")
    parser.add_argument("--skip-done", action="store_true", help="skip runs with per_user.parquet")
    args = parser.parse_args(argv)
    runs = sorted({p.parent for f in args.folders for p in f.rglob("metrics.json")})
    if not runs:
        raise SystemExit(f"no metrics.json under {[str(f) for f in args.folders]}")
    for run_dir in tqdm(runs, desc="re-evaluating", unit="run"):
        if args.skip_done and (run_dir / "per_user.parquet").is_file():
            continue
        evaluate(run_dir, args.set, check=not args.no_check)

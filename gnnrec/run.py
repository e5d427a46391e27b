"""One run, wired stage by stage: data -> features -> model -> train -> evaluate -> track.

The command line (:mod:`gnnrec.cli`), tests and notebooks all call :func:`run`.
Everything a config can get wrong is checked before any data is loaded
(:func:`check_config`): missing values, every value's type, the settings' ranges, the
monitored key, and whether the model, loss and sampler can train together.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from gnnrec.config_check import check_types
from gnnrec.data.cache import load_dataset
from gnnrec.data.fingerprint import data_fingerprint, split_fingerprint
from gnnrec.data.knowledge import knowledge_graph
from gnnrec.data.preprocess import check_preprocess_options
from gnnrec.data.schema import InteractionData
from gnnrec.data.split import Split, check_split_options, split_interactions
from gnnrec.errors import ConfigError
from gnnrec.evaluate.evaluator import RankingTask
from gnnrec.evaluate.protocol import GroupFlag, Protocol, flag_groups
from gnnrec.evaluate.tasks import MAIN
from gnnrec.features import encode_cached, item_embeddings, user_profiles
from gnnrec.models.base import Recommender, TrainingData, build_from_data
from gnnrec.nn.scoring import Scorer, ranking_inputs
from gnnrec.track.examples import example_recommendations, item_titles
from gnnrec.track.run_folder import (
    CONFIG_FINGERPRINT,
    METRICS_FILE,
    check_run_folder,
    clear_run_folder,
    config_fingerprint,
)
from gnnrec.train.checks import check_training
from gnnrec.train.identity import SPLIT_KEYS, resolved, run_identity
from gnnrec.train.schedule import Schedule
from gnnrec.utils.io import atomic_write, write_json
from gnnrec.utils.runtime import seed_everything, set_deterministic

__all__ = [
    "RunSetup",
    "TextFeatures",
    "build_model",
    "check_config",
    "load_split",
    "monitor_key",
    "per_user_frame",
    "prepare",
    "run",
    "training_data",
]

log = logging.getLogger(__name__)


def check_config(cfg: DictConfig) -> None:
    """Fail before any work on what the config alone shows to be wrong.

    * a mandatory value left unset (``???``), named by the key the user sets
      (``data.path``, not an interpolation that reads it);
    * every value against the type hint of what consumes it
      (:func:`gnnrec.config_check.check_types`: ``trainer.max_epochs=abc: expected an
      integer``);
    * ranges and choices, by the code that owns them: the trainer, protocol, loss, data
      source and tracker are built (they read no data), the ``data.split``,
      ``data.preprocess`` and sampler settings checked;
    * ``trainer.monitor`` set by hand (``optimized_metric`` is the one key);
    * ``optimized_metric`` that is not a validation key the protocol computes, or that
      needs validation rows the data's own split lacks (the LightGCN files);
    * the model's option values that need no data (``Recommender.check_options``);
    * a model, loss and sampler that cannot train together (:func:`check_training`);
    * a scheduler stepped on the monitored metric (``scheduler=plateau``) in a run that
      validates nothing.

    Raises:
        ConfigError: naming the keys.
    """
    missing = sorted(_missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"missing value(s) for {', '.join(missing)}; set them on the command line, "
            f"e.g. {missing[0]}=..."
        )
    check_types(cfg)
    if cfg.trainer.get("monitor") is not None:
        raise ConfigError(
            f"trainer.monitor={cfg.trainer.monitor} is set from optimized_metric; set "
            f"optimized_metric={cfg.trainer.monitor} instead"
        )
    _instantiate(cfg.trainer)
    _instantiate(cfg.data.source)
    _instantiate(cfg.tracker)
    try:
        check_split_options(**OmegaConf.to_container(cfg.data.split, resolve=True))
        check_preprocess_options(**OmegaConf.to_container(cfg.data.preprocess, resolve=True))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    protocol = _protocol(cfg)
    requested = cfg.get("optimized_metric")
    if requested is not None:
        protocol.monitor_key(requested, has_validation=_may_have_validation(cfg))
    model_cls = get_class(cfg.model._target_)
    if isinstance(model_cls, type) and issubclass(model_cls, Recommender):
        options = OmegaConf.to_container(cfg.model, resolve=True)
        options = {k: v for k, v in options.items() if not k.startswith("_")}
        try:
            model_cls.check_options(**options)
        except ValueError as err:
            raise ConfigError(f"model {cfg.model._target_}: {err}") from err
    if getattr(model_cls, "trains", True):
        try:
            check_training(model_cls, _instantiate(cfg.loss), _instantiate(cfg.sampler))
        except ValueError as err:
            raise ConfigError(str(err)) from err
        _check_schedule(cfg, requested)


def _schedule(cfg: DictConfig) -> Schedule:
    """The ``scheduler`` group's schedule; a config saved before the group: constant."""
    node = cfg.get("scheduler")
    return Schedule() if node is None else _instantiate(node)


def _check_schedule(cfg: DictConfig, requested: str | None) -> None:
    """Refuse a schedule stepped on the monitored metric when nothing is validated."""
    schedule = _schedule(cfg)
    if schedule.needs_monitor and (requested is None or not _may_have_validation(cfg)):
        reason = (
            "optimized_metric=null"
            if requested is None
            else "this data has no validation split (a fixed split without val rows)"
        )
        raise ConfigError(
            f"scheduler {type(schedule).__name__} is stepped on the monitored validation "
            f"metric, but {reason}, so nothing is validated; choose another scheduler (e.g. "
            "scheduler=cosine) or a run with validation"
        )


def _may_have_validation(cfg: DictConfig) -> bool:
    """``False`` when the data's own split is used and is known to have no val rows."""
    source = get_class(cfg.data.source._target_)
    uses_own_split = cfg.data.split.get("fixed", "auto") in (True, "auto")
    return not (uses_own_split and getattr(source, "has_validation", None) is False)


def _missing_keys(node, prefix: str = "") -> list[str]:
    """Dotted keys whose value is ``???``; interpolations are not resolved."""
    out = []
    for key in node:
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            out.append(full)
            continue
        if OmegaConf.is_interpolation(node, key):
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            out += _missing_keys(child, f"{full}.")
    return out


def _instantiate(node: DictConfig, **kwargs):
    """``instantiate`` whose rejection of a config value is a :class:`ConfigError`.

    Hydra wraps a constructor's ``ValueError`` in its own exception with the call in the
    message; the user sees the constructor's message, which names the key.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ValueError | TypeError):
            raise ConfigError(str(cause)) from cause
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _protocol(cfg: DictConfig) -> Protocol:
    return _instantiate(cfg.eval)


def monitor_key(cfg: DictConfig, has_validation: bool) -> str | None:
    """The validation key that selects epochs and sweep trials, from ``optimized_metric``.

    ``auto`` follows the configured metrics (``val/all/ndcg@20`` by default) and is
    ``None`` for data without a validation split (the last epoch is kept).
    """
    try:
        return _protocol(cfg).monitor_key(cfg.get("optimized_metric"), has_validation)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def build_model(model_cfg: DictConfig, data: TrainingData) -> Recommender:
    """Instantiate a ``_partial_`` model config with the :class:`TrainingData` it names.

    A constructor that rejects a config value (a misspelt key, a value out of range)
    fails as a :class:`~gnnrec.errors.ConfigError` naming the model.
    """
    target = model_cfg.get("_target_")
    try:
        model = build_from_data(instantiate(model_cfg), data, "model")
    except TypeError as err:
        raise ConfigError(f"model {target}: {err}; check the keys under model.") from err
    except ValueError as err:
        raise ConfigError(f"model {target}: {err}") from err
    if not isinstance(model, Recommender):
        raise ConfigError(
            f"model {target} is not a gnnrec.models.Recommender; models subclass it "
            "(docs/extending.md)"
        )
    return model


class TextFeatures:
    """Item and user-profile text embeddings for one run, encoded on first use.

    Args:
        cfg: The run's config (``encoder``, ``data.text``, ``paths.cache_dir``).
        data: The preprocessed data.
        split: The split; only its ``train`` table builds user profiles.
    """

    def __init__(self, cfg: DictConfig, data: InteractionData, split: Split) -> None:
        self.cfg, self.data, self.split = cfg, data, split
        self._encoder = None

    @property
    def enabled(self) -> bool:
        return self.cfg.get("encoder") is not None and self.cfg.encoder.get("_target_") is not None

    def encoder(self):
        if not self.enabled:
            raise ConfigError(
                f"model {self.cfg.model.get('_target_')} needs text embeddings but encoder=none "
                "is selected; choose a text encoder, e.g. encoder=minilm"
            )
        if self._encoder is None:
            self._encoder = instantiate(self.cfg.encoder)
        return self._encoder

    def items(self) -> torch.Tensor:
        """``[num_items, d]`` item text embeddings (``data.text.template``)."""
        return item_embeddings(
            self.data, self.cfg.data.text.template, self.encoder(), self.cfg.paths.cache_dir
        )

    def profiles(self) -> torch.Tensor:
        """``[num_users, d]`` embeddings of the users' profile texts (training items only)."""
        text = self.cfg.data.text
        column = text.title_column
        if column not in self.data.items.columns:
            raise ConfigError(
                f"data.text.title_column={column!r} is not an item column; available: "
                f"{list(self.data.items.columns)}"
            )
        titles = self.data.items[column].fillna("").astype(str).to_numpy()
        profiles = user_profiles(
            self.split.train, titles, self.data.num_users, max_items=text.profile_items
        )
        return encode_cached(self.encoder(), profiles, self.cfg.paths.cache_dir, kind="profiles")


def load_split(cfg: DictConfig) -> tuple[InteractionData, Split]:
    """Load the configured data and split it (``data.target_domain``/``zero_shot_domain``)."""
    source = instantiate(cfg.data.source)
    data = load_dataset(
        source,
        preprocess=OmegaConf.to_container(cfg.data.preprocess, resolve=True),
        cache_dir=cfg.paths.cache_dir,
    )
    zero_shot = cfg.data.get("zero_shot_domain")
    target = zero_shot or cfg.data.target_domain
    split = split_interactions(
        data,
        target,
        zero_shot=bool(zero_shot),
        **OmegaConf.to_container(cfg.data.split, resolve=True),
    )
    if not cfg.data.get("source_edges", True):
        # Ablation: the same held-out rows, but only target-domain training edges.
        keep = split.train["domain_idx"] == split.target_domain_idx
        split.train = split.train[keep].reset_index(drop=True)
    return data, split


def trained_state(run_dir: str | Path) -> tuple[dict, dict | None]:
    """The selected weights of a finished run and the identity they were trained under.

    ``checkpoints/best.pt``, else the best model kept in ``last.pt`` (else its current
    one), loaded with ``weights_only=True``; the identity is
    :func:`~gnnrec.train.identity.run_identity` as the trainer stored it (``None`` in a
    checkpoint older than identities).

    Raises:
        FileNotFoundError: The run folder holds neither checkpoint (a run made with
            ``trainer.checkpoint=false``).
    """
    from gnnrec.utils.io import load_checkpoint

    ckpt_dir = Path(run_dir) / "checkpoints"
    if (ckpt_dir / "best.pt").is_file():
        best = load_checkpoint(ckpt_dir / "best.pt")
        return best["model"], best.get("identity")
    if (ckpt_dir / "last.pt").is_file():
        last = load_checkpoint(ckpt_dir / "last.pt")
        return last.get("best_model", last["model"]), last.get("identity")
    raise FileNotFoundError(
        f"{ckpt_dir} holds neither best.pt nor last.pt; the run was made with "
        "trainer.checkpoint=false and its trained model cannot be loaded"
    )


class ModelLoader:
    """Builds other models on this run's data and split: :attr:`TrainingData.load_model`.

    ``loader(spec)`` takes either a ``_partial_`` model constructor (an instantiated
    model config), built and fitted on this run's training data, or a run folder of
    ``gnnrec-train``, whose model is rebuilt from its ``.hydra/config.yaml`` (with that
    run's encoder) on this run's training rows and, if it trains, given the weights of
    its checkpoint. A run folder is refused, naming the key, when its data or split
    settings (:data:`SPLIT_KEYS`) differ from this run's, and when its checkpoint's data
    or split fingerprint does: its model could have trained on this run's held-out rows.
    The model comes back in eval mode with its parameters frozen.
    """

    def __init__(
        self, cfg: DictConfig, data: InteractionData, split: Split, train: TrainingData
    ) -> None:
        self.cfg = cfg
        self.data = data
        self.split = split
        self.train = train

    def __call__(self, spec: object) -> Recommender:
        if isinstance(spec, str | Path):
            model = self._from_run(Path(spec))
        elif callable(spec):
            model = build_from_data(spec, self.train)
            if not isinstance(model, Recommender):
                raise ConfigError(f"{spec!r} did not build a gnnrec.models.Recommender")
        else:
            raise ConfigError(
                f"a model to load is a run folder or a model config with _target_ and "
                f"_partial_: true, got {spec!r}"
            )
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def _from_run(self, run_dir: Path) -> Recommender:
        from gnnrec.api import load_run_config

        try:
            other = load_run_config(run_dir)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from err
        for key in SPLIT_KEYS:
            mine = resolved(self.cfg, key)
            theirs = resolved(other, key)
            if mine != theirs:
                raise ConfigError(
                    f"run {run_dir} was made with {key}={theirs}, this run has {key}={mine}: "
                    "its model was trained on other rows and may have seen this run's "
                    "held-out pairs"
                )
        model = build_model(other.model, training_data(other, self.data, self.split))
        if model.trainable:
            state, identity = trained_state(run_dir)
            ours = {
                "data_fingerprint": data_fingerprint(self.data),
                "split_fingerprint": split_fingerprint(self.data, self.split),
            }
            for key, value in ours.items():
                saved = None if identity is None else identity.get(key)
                if saved != value:
                    raise ConfigError(
                        f"run {run_dir}: its checkpoint's {key} is {saved}, this run's is "
                        f"{value}: it was trained on other data or another split"
                    )
            model.load_state_dict(state)
        log.info("loaded model of run %s: %s", run_dir, model)
        return model


def training_data(cfg: DictConfig, data: InteractionData, split: Split) -> TrainingData:
    """The run's :class:`TrainingData`: training rows, the graph and text features (lazy)."""
    from gnnrec.data.graph import build_graph

    text = TextFeatures(cfg, data, split)
    builders = {
        "graph": lambda: build_graph(data.num_users, data.item_domain, data.domains, split.train),
        "knowledge_graph": lambda: knowledge_graph(data.kg, data.item_entity, data.num_items),
        "load_model": lambda: ModelLoader(cfg, data, split, train),
    }
    if text.enabled:
        builders["item_text_emb"] = text.items
        builders["user_profiles"] = text.profiles
    train = TrainingData(
        num_users=data.num_users,
        num_items=data.num_items,
        domains=tuple(data.domains),
        item_domain=torch.tensor(data.item_domain, dtype=torch.long),
        target_domain=split.target_domain_idx,
        train_users=torch.tensor(split.train["user_idx"].to_numpy(), dtype=torch.long),
        train_items=torch.tensor(split.train["item_idx"].to_numpy(), dtype=torch.long),
        builders=builders,
    )
    return train


def per_user_frame(rows: list[pd.DataFrame], data: InteractionData, split: Split) -> pd.DataFrame:
    """The ``per_user.parquet`` table: per-user rows plus raw user ids and fingerprints.

    ``user_id`` is the raw id of the data files, so runs whose preprocessing numbers
    users differently still pair the same people; ``data_fingerprint`` and
    ``split_fingerprint`` say whether two runs saw the same data and held-out rows.
    """
    frame = pd.concat(rows, ignore_index=True)
    frame.insert(2, "user_id", data.users["user"].astype(str).to_numpy()[frame["user_idx"]])
    frame["data_fingerprint"] = data_fingerprint(data)
    frame["split_fingerprint"] = split_fingerprint(data, split)
    return frame


@dataclass
class RunSetup:
    """Everything a run builds before training.

    ``tasks`` is ``{"val": {task: RankingTask}, "test": {...}}``; ``group_flags`` the
    groups of both splits whose metrics are easy to misread (:func:`flag_groups`, logged
    by :func:`prepare`); ``time_s`` the seconds this took (data, split, text features
    the model needs, model): ``time/data_s``.
    """

    data: InteractionData
    split: Split
    train: TrainingData
    model: Recommender
    protocol: Protocol
    tasks: dict[str, dict[str, RankingTask]]
    monitor: str | None
    time_s: float
    group_flags: list[GroupFlag]

    @property
    def has_validation(self) -> bool:
        return bool(self.tasks["val"])


def prepare(cfg: DictConfig, device: torch.device | str = "cpu", check: bool = True) -> RunSetup:
    """Check the config, load and split the data, build the model and the ranking tasks.

    The model is on ``device`` with its initial weights (seeded by the caller).
    ``check=False`` skips :func:`check_config` for a caller that has just run it.

    Groups whose metrics are easy to misread (:func:`flag_groups`: empty though the
    split calls for them, a repeat of another group, fewer than
    :data:`gnnrec.keys.FEW_USERS` users) are logged, each naming the group and its user
    count: as warnings for the test split, whose numbers are reported, and at info level
    for the validation split.
    """
    t_start = time.perf_counter()
    if check:
        check_config(cfg)
    data, split = load_split(cfg)
    log.info("split %s", split.summary())
    train = training_data(cfg, data, split)
    model = build_model(cfg.model, train).to(device)
    log.info("model %s", model)
    protocol = _protocol(cfg)
    tasks = protocol.tasks(split, data.item_domain)
    flags = [f for name in tasks for f in flag_groups(tasks[name], name, split.expected_groups)]
    for flag in flags:
        log.log(logging.WARNING if flag.split == "test" else logging.INFO, flag.message())
    return RunSetup(
        data=data,
        split=split,
        train=train,
        model=model,
        protocol=protocol,
        tasks=tasks,
        monitor=monitor_key(cfg, has_validation=bool(tasks["val"])),
        time_s=time.perf_counter() - t_start,
        group_flags=flags,
    )


def _warn_unvalidated_epochs(max_epochs: int, eval_every: int) -> None:
    """Warn when the last epochs train but are never validated, so never selected."""
    last = max_epochs // eval_every * eval_every
    if last < max_epochs:
        log.warning(
            "trainer.max_epochs=%d is not a multiple of trainer.eval_every=%d: the last %d "
            "epoch(s) train but are never validated, so they cannot be selected (best_epoch "
            "is at most %d)",
            max_epochs,
            eval_every,
            max_epochs - last,
            last - 1,
        )


def _embeddings(model: Recommender) -> tuple[torch.Tensor | Scorer, torch.Tensor | None]:
    """The evaluator's arguments: ``(user_emb, item_emb)``, or ``(scorer, None)``."""
    with torch.no_grad():
        return ranking_inputs(model())


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict[str, float | str]:
    """Train and evaluate one configuration; write ``metrics.json`` into ``output_dir``.

    ``metrics.json`` is written last, atomically, with the config's fingerprint
    (:mod:`gnnrec.track.run_folder`). A folder that already holds a finished run is
    refused unless ``trainer.resume`` continues it in place or ``overwrite=true``; what
    an earlier run left there is then removed. Checkpoints carry the run's identity
    (:mod:`gnnrec.train.identity`); resuming another run's checkpoint is refused.

    Args:
        cfg: A composed config (``conf/train.yaml``).
        output_dir: The run folder; defaults to ``cfg.paths.output_dir`` (Hydra's).

    Returns:
        The ``metrics.json`` contents: flat metrics ``"<split>/<group>/<metric>@<k>"``
        and ``"<split>/<group>/num_users"`` (0 for an expected group without users),
        ``"<split>/<group>/same_as"`` (a group's name) for a group that repeats another,
        plus ``best_epoch``, timings and ``config_fingerprint`` (a string).
    """
    t_start = time.perf_counter()
    check_config(cfg)  # before anything reads a value: the seed, the trainer, the data
    fingerprint = config_fingerprint(cfg)
    out = Path(output_dir if output_dir is not None else cfg.paths.output_dir)
    resume = cfg.trainer.get("resume")
    check_run_folder(out, cfg.get("overwrite", False), resume)
    seed_everything(cfg.seed)
    set_deterministic(cfg.deterministic)

    trainer = _instantiate(cfg.trainer)
    setup = prepare(cfg, trainer.device, check=False)
    clear_run_folder(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    data, model, protocol, tasks = setup.data, setup.model, setup.protocol, setup.tasks
    trainer.monitor = setup.monitor
    if setup.monitor is not None and model.trainable:
        _warn_unvalidated_epochs(trainer.max_epochs, trainer.eval_every)

    def validate(m: Recommender) -> dict[str, float]:
        return protocol.evaluate("val", tasks["val"], *_embeddings(m))

    def on_epoch(record: dict[str, float], history: list[dict[str, float]]) -> None:
        every = cfg.test_curve_every
        if every and (record["epoch"] + 1) % every == 0:
            # Learning-curve monitoring only: never used for model selection.
            emb = _embeddings(model)
            record.update(protocol.evaluate("test", tasks["test"], *emb, prefix="curve/"))
        tracker.log(record, step=int(record["epoch"]))
        write_json(out / "history.json", history)

    tracker = instantiate(cfg.tracker)
    tracker.start(cfg, out)
    try:
        metrics: dict[str, float | str] = {
            "best_epoch": 0,
            "time/train_s": 0.0,
            "time/val_s": 0.0,
        }
        if model.trainable:
            loss = instantiate(cfg.loss)
            sampler = build_from_data(instantiate(cfg.sampler), setup.train, "sampler")
            check_training(model, loss, sampler)
            fit = trainer.fit(
                model,
                loss,
                sampler,
                instantiate(cfg.optimizer)(model.parameter_groups()),
                validate=validate if setup.monitor is not None else None,
                checkpoint_dir=out / "checkpoints",
                on_epoch=on_epoch,
                identity=run_identity(cfg, data, setup.split),
                schedule=_schedule(cfg),
            )
            # Complete even when a resume had no epoch left to run (on_epoch never called).
            write_json(out / "history.json", fit.history)
            metrics.update(
                {
                    "best_epoch": fit.best_epoch,
                    "epochs": len(fit.history),
                    "stopped_early": float(fit.stopped_early),
                    "stopped_on_time": float(fit.stopped_on_time),
                    "time/train_s": fit.train_time_s,
                    "time/val_s": fit.eval_time_s,
                    "time/epoch_s": fit.train_time_s / max(len(fit.history), 1),
                }
            )
        model.eval()
        t0 = time.perf_counter()
        emb = _embeddings(model)
        if setup.has_validation:
            metrics.update(protocol.evaluate("val", tasks["val"], *emb))
        rows: list[pd.DataFrame] = []
        metrics.update(protocol.evaluate("test", tasks["test"], *emb, per_user=rows))
        metrics["time/test_s"] = time.perf_counter() - t0
        for flag in setup.group_flags:  # empty groups (num_users 0) and repeats (same_as)
            metrics.update(flag.records())
        # Test metrics per user, for paired significance tests (gnnrec-report).
        per_user = per_user_frame(rows, data, setup.split)
        atomic_write(out / "per_user.parquet", lambda tmp: per_user.to_parquet(tmp, index=False))
        tracker.save(out / "per_user.parquet")
        # A qualitative look: a few test users' top-10 with titles (examples.csv, W&B table).
        titles = item_titles(data.items, OmegaConf.select(cfg, "data.text.title_column"))
        examples = example_recommendations(
            *emb,
            tasks["test"][MAIN],
            titles,
            seed=cfg.seed,
            user_names=data.users["user"].to_numpy(),
        )
        atomic_write(out / "examples.csv", lambda tmp: examples.to_csv(tmp, index=False))
        tracker.log_table("examples", examples)
        metrics["time/data_s"] = setup.time_s
        metrics["time/total_s"] = time.perf_counter() - t_start
        metrics[CONFIG_FINGERPRINT] = fingerprint
        write_json(out / METRICS_FILE, metrics)  # last: the folder now holds a finished run
        tracker.finish(summary=metrics)
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    return metrics

"""Tune every model of the cross-domain benchmark on validation, one budget for all.

    python experiments/tune_amazon.py run ROOT [--targets movies books] [--models mf ...] [--jobs 2]
    python experiments/tune_amazon.py export ROOT [--targets ...] [--models ...]

``run`` launches, per target domain and model, the Optuna study
``conf/hparams_search/<model>_optuna.yaml`` on ``experiment=cdr_amazon_<target>`` (split
seed 0) with the budget of ``conf/hparams_search/common/optuna.yaml``: the same number of
trials for every model (``--trials``, 10), each trained for at most 100 epochs at batch
8,192, validated every 5 epochs with patience 3 and at most 15 minutes of training. Every
trial is a run folder ``ROOT/<target>/<model>/sweep<k>/<n>/``; the studies live in
``ROOT/logs/optuna/``. A study that stopped early is continued by the same command: it runs
only the trials still missing (a new ``sweep<k>`` folder), and TPE sees the earlier ones.
The trail CSVs (below) carry a study across machines: on a fresh ``ROOT`` the trials they
record count as done, and the Optuna study is rebuilt from them before new trials run.
Studies run one thread each, ``--jobs`` at a time. With ``--until HH:MM`` (local time) a
study runs its missing trials one per command and starts a trial only when it can end
before then (its longest trial so far, or at first the clock budget plus two minutes):
a session that must stop at a known time loses no trial half-trained.

``export`` reads the trial folders (never the test split's figures: a trial's value is
its ``val/all/ndcg@20`` at the best validated epoch) and writes, per study,

* ``experiments/tuning/amazon_<target>_<model>.csv``: the trail, one row per trial
  (value, warm and cold users' values, parameters, best epoch, epochs run, stop reason,
  training minutes, place in the study and every override it trained with);
* ``conf/experiment/tuned/amazon_<target>_<model>.yaml``: the best trial as an experiment
  file, so that ``gnnrec-train experiment=tuned/amazon_<target>_<model> seed=0,1,2 -m``
  reruns the row;
* ``experiments/tuning/README.md``: every study's space, budget and best trial, with the
  trials whose best epoch was their last validated one when the epochs or the clock ran
  out (not patience) marked budget-bound.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONF = REPO / "conf"
TRAIL_DIR = HERE / "tuning"
TUNED_DIR = CONF / "experiment" / "tuned"
METRIC = "val/all/ndcg@20"
TARGETS = ("movies", "books")

# model -> overrides every trial of its study gets (beyond the search file)
MODELS: dict[str, list[str]] = {
    "mf": ["encoder=none"],
    "lightgcn": ["encoder=none"],
    "bitgcf": ["encoder=none"],
    "emcdr": ["encoder=none"],
    "rgcn": ["encoder=none"],
    "itemknn": ["encoder=none"],
    "gfcf": ["encoder=none"],
    "ease": ["encoder=none"],
    "lightgcn_text": [],
    "lightgcn_text_cold": [],
    "lightgcn_text_decoupled": [],
}
TEXT_MODELS = ("lightgcn_text", "lightgcn_text_cold", "lightgcn_text_decoupled")
WARM = "val/warm/ndcg@20"
COLD = "val/cold/ndcg@20"
PER_TARGET: dict[tuple[str, str], list[str]] = {
    # EASE's dense inverse: every target item plus the most-interacted source items
    ("ease", "movies"): ["model.max_items=20000"],
    ("ease", "books"): ["model.max_items=42000"],
}
# keys a trial sets that are not searched but belong to the tuned experiment file
BUDGET_KEYS = (
    "trainer.max_epochs",
    "trainer.eval_every",
    "trainer.patience",
    "trainer.batch_size",
    "trainer.max_time_min",
)


@dataclass
class Trial:
    """One trial's folder, its overrides and what metrics.json says of it.

    A trial of an earlier session whose folder is gone comes from its row of the trail
    CSV (``folder`` is then the path it had, ``archived`` is true, and ``metrics`` holds
    what the trail keeps).
    """

    folder: Path
    number: int
    overrides: dict[str, str]
    metrics: dict
    where: str = ""  # "sweep<k>/<n>", the trial's place in the study
    archived: bool = False

    @property
    def value(self) -> float:
        value = self.metrics.get(METRIC)
        return float(value) if isinstance(value, (int, float)) else math.nan

    @property
    def trains(self) -> bool:
        return "epochs" in self.metrics

    @property
    def epochs(self) -> int:
        return int(self.metrics.get("epochs", 0))

    @property
    def best_epoch(self) -> int:
        return int(self.metrics.get("best_epoch", 0))

    @property
    def budget_bound(self) -> bool:
        """Still improving when its budget (epochs or clock) ended: the best epoch is the
        last validated one, and patience did not stop it."""
        if not self.trains or self.metrics.get("stopped_early"):
            return False
        every = int(self.overrides.get("trainer.eval_every", _budget("trainer.eval_every")))
        return self.best_epoch >= self.epochs - every

    @property
    def stop(self) -> str:
        if not self.trains:
            return "fit"
        if self.metrics.get("stopped_on_time"):
            return "time"
        if self.metrics.get("stopped_early"):
            return "patience"
        return "max_epochs"

    @property
    def train_min(self) -> float:
        return float(self.metrics.get("time/train_s", 0.0)) / 60


@dataclass
class Study:
    target: str
    model: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"amazon_{self.target}_{self.model}"

    @property
    def done(self) -> list[Trial]:
        return [t for t in self.trials if not math.isnan(t.value)]

    @property
    def best(self) -> Trial | None:
        # ties: the earlier trial (a later one must be strictly better)
        done = sorted(self.done, key=lambda t: t.number)
        return max(done, key=lambda t: t.value) if done else None


def search_file(model: str) -> Path:
    return CONF / "hparams_search" / f"{model}_optuna.yaml"


def search_space(model: str) -> dict[str, str]:
    """The ``hydra.sweeper.params`` of the model's search file, as written."""
    conf = yaml.safe_load(search_file(model).read_text())
    return dict(conf["hydra"]["sweeper"]["params"])


def study_dir(root: Path, target: str, model: str) -> Path:
    return root / target / model


def sweep_folders(base: Path) -> list[Path]:
    return [p for p in base.glob("sweep*") if p.is_dir() and p.name[5:].isdigit()]


def _place(where: str) -> tuple[int, int]:
    sweep, _, job = where.partition("/")
    return int(sweep[5:]), int(job)


def trail_file(trail_dir: Path | None, target: str, model: str) -> Path | None:
    return None if trail_dir is None else trail_dir / f"amazon_{target}_{model}.csv"


def read_archived(path: Path | None) -> list[Trial]:
    """The trials a trail CSV records (for a study whose trial folders are gone)."""
    if path is None or not path.is_file():
        return []
    trials = []
    with path.open() as f:
        for row in csv.DictReader(f):
            stop = row["stop"]
            metrics: dict = {
                METRIC: float(row[METRIC]),
                WARM: float(row[WARM]),
                COLD: float(row[COLD]),
                "time/train_s": 60 * float(row["train_min"]),
            }
            if stop != "fit":
                metrics.update(
                    best_epoch=int(row["best_epoch"]),
                    epochs=int(row["epochs"]),
                    stopped_early=float(stop == "patience"),
                    stopped_on_time=float(stop == "time"),
                )
            overrides = dict(o.partition("=")[::2] for o in json.loads(row["overrides"]))
            trials.append(
                Trial(Path(row["folder"]), 0, overrides, metrics, row["folder"], archived=True)
            )
    return trials


def read_trials(root: Path, target: str, model: str, trail_dir: Path | None = None) -> Study:
    """Every finished trial of the study, numbered in launch order.

    Trial folders under ``root``, and the trail CSV's rows (``trail_dir``) for trials whose
    folder is not there (a study continued in a later session on a fresh machine).
    """
    study = Study(target, model)
    base = study_dir(root, target, model)
    found: dict[str, Trial] = {}
    for sweep in sweep_folders(base):
        for job in (p for p in sweep.iterdir() if p.name.isdigit()):
            metrics_file = job / "metrics.json"
            overrides_file = job / ".hydra" / "overrides.yaml"
            if not metrics_file.is_file() or not overrides_file.is_file():
                continue
            overrides = {}
            for item in yaml.safe_load(overrides_file.read_text()):
                key, _, value = item.partition("=")
                overrides[key] = value
            metrics = json.loads(metrics_file.read_text())
            where = f"{sweep.name}/{job.name}"
            found[where] = Trial(job, 0, overrides, metrics, where)
    for trial in read_archived(trail_file(trail_dir, target, model)):
        found.setdefault(trial.where, trial)
    for number, where in enumerate(sorted(found, key=_place)):
        found[where].number = number
        study.trials.append(found[where])
    return study


def restore_study(study: Study, storage: Path) -> int:
    """Rebuild the Optuna study from archived trials when its SQLite file is gone.

    Each archived trial is added as a finished trial with the search file's
    distributions, so TPE models it as if the study had never left the machine.

    Returns:
        The number of trials added.
    """
    archived = [t for t in study.trials if t.archived]
    if storage.is_file() or not archived:
        return 0
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    space = search_space(study.model)
    distributions, _ = create_params_from_overrides([f"{k}={v}" for k, v in space.items()])
    storage.parent.mkdir(parents=True, exist_ok=True)
    stored = optuna.create_study(
        study_name=study.name, storage=f"sqlite:///{storage}", direction="maximize"
    )
    for trial in archived:
        params = {k: _yaml_value(trial.overrides[k]) for k in distributions}
        stored.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=trial.value)
        )
    return len(archived)


def launch(
    root: Path,
    target: str,
    model: str,
    trials: int,
    extra: list[str] = (),
    trail_dir: Path | None = TRAIL_DIR,
    until: datetime | None = None,
) -> int:
    """Run the trials the study still misses, in a new sweep folder.

    Trials recorded in the trail CSV count as done; when their study file is gone it is
    rebuilt from them first (:func:`restore_study`). With ``until``, one trial per
    command, each started only when it is expected to end by then (:func:`trial_fits`).
    """
    if until is None:
        return _launch(root, target, model, trials, trials, extra, trail_dir)
    longest: float | None = None
    while True:
        done = len(read_trials(root, target, model, trail_dir).trials)
        if done >= trials:
            print(f"{target}/{model}: {done} trials done", flush=True)
            return 0
        expected = longest if longest is not None else 60 * (_budget("trainer.max_time_min") + 2)
        if not trial_fits(datetime.now(), until, expected):
            print(
                f"{target}/{model}: {trials - done} trials left; the next one (about "
                f"{expected / 60:.0f} min) would not end before {until:%H:%M}",
                flush=True,
            )
            return 0
        start = time.monotonic()
        code = _launch(root, target, model, trials, 1, extra, trail_dir)
        if code:
            return code
        longest = max(longest or 0.0, time.monotonic() - start)


def trial_fits(now: datetime, until: datetime, expected_s: float) -> bool:
    """Whether a trial expected to take ``expected_s`` seconds, started now, ends by ``until``."""
    return now + timedelta(seconds=expected_s) <= until


def _launch(
    root: Path,
    target: str,
    model: str,
    trials: int,
    at_most: int,
    extra: list[str],
    trail_dir: Path | None,
) -> int:
    """One sweep command of up to ``at_most`` of the study's missing trials."""
    study = read_trials(root, target, model, trail_dir)
    missing = min(trials - len(study.trials), at_most)
    if missing <= 0:
        print(f"{target}/{model}: {len(study.trials)} trials done", flush=True)
        return 0
    restored = restore_study(study, root / "logs" / "optuna" / f"{study.name}.db")
    if restored:
        print(f"{target}/{model}: study rebuilt from {restored} trials of its trail", flush=True)
    base = study_dir(root, target, model)
    base.mkdir(parents=True, exist_ok=True)
    k = 1 + max((_place(t.where)[0] for t in study.trials), default=-1)
    k = max(k, len(sweep_folders(base)))
    sweep = base / f"sweep{k}"
    overrides = [
        f"experiment=cdr_amazon_{target}",
        f"hparams_search={model}_optuna",
        *MODELS[model],
        *PER_TARGET.get((model, target), []),
        f"hydra.sweeper.n_trials={missing}",
        f"hydra.sweeper.study_name=amazon_{target}_{model}",
        f"paths.log_dir={root / 'logs'}",
        f"hydra.sweep.dir={sweep}",
        "tracker=none",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "gnnrec.train", "-m", *overrides]
    print(f"start {target}/{model}: {missing} trials -> {sweep}", flush=True)
    with (base / f"sweep{k}.log").open("w") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    print(f"{'done' if code == 0 else f'FAILED ({code})'}: {target}/{model}", flush=True)
    return code


def _yaml_value(value: str):
    """A command-line override's value as YAML would read it (numbers, booleans, null)."""
    return yaml.safe_load(value) if value != "" else ""


# a trial's overrides that place or launch it, not part of the configuration it trained
LAUNCH_KEYS = ("experiment", "hparams_search", "tracker")
LAUNCH_PREFIXES = ("hydra.", "paths.")


def search_groups(model: str) -> dict[str, str]:
    """The config groups the model's search file selects (``override /<group>: <option>``)."""
    conf = yaml.safe_load(search_file(model).read_text())
    groups = {}
    for entry in conf.get("defaults", []):
        if isinstance(entry, dict):
            for key, option in entry.items():
                if key.startswith("override /") and not key.startswith("override /hydra"):
                    groups[key.removeprefix("override /")] = option
    return groups


def tuned_experiment(study: Study, best: Trial | None = None, name: str = "", why: str = "") -> str:
    """The best trial (or ``best``) as an experiment file that reruns it.

    Everything the trial trained with beyond the defaults: the search file's config
    groups, the budget of common/optuna.yaml, then the trial's own overrides (the drawn
    parameters and the fixed ones, e.g. ``encoder=none``), as the trial composed them.
    """
    best = best or study.best
    name = name or study.name
    assert best is not None
    groups = {"data": "amazon_bcm", **search_groups(study.model)}
    values: dict[str, object] = {key: _budget(key) for key in BUDGET_KEYS}
    values["trainer.progress"] = False
    values["data.target_domain"] = study.target
    for key, value in best.overrides.items():
        if key in LAUNCH_KEYS or key.startswith(LAUNCH_PREFIXES):
            continue
        if "." in key:
            values[key] = _yaml_value(value)
        else:
            groups[key] = value
    nested: dict = {"task_name": f"tuned_{name}"}
    for key, value in sorted(values.items()):
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    lines = [
        "# @package _global_",
        why
        or f"# {study.model} tuned on validation ({METRIC}) for target {study.target}: the best of",
        f"# {len(study.done)} trials of conf/hparams_search/{study.model}_optuna.yaml, trial "
        f"{best.number}, value {best.value:.4f},",
        f"# best epoch {best.best_epoch} of {best.epochs} run"
        + (" (budget-bound)" if best.budget_bound else "")
        + ". Written by experiments/tune_amazon.py export;",
        f"# trail: experiments/tuning/{study.name}.csv. Rerun the row:",
        f"#   gnnrec-train -m experiment=tuned/{name} seed=0,1,2",
        "defaults:",
        *(f"  - override /{group}: {choice}" for group, choice in groups.items()),
        "",
    ]
    body = yaml.safe_dump(nested, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + body


@functools.cache
def _common() -> dict:
    return yaml.safe_load((CONF / "hparams_search" / "common" / "optuna.yaml").read_text())


def _budget(key: str):
    node = _common()
    for part in key.split("."):
        node = node[part]
    return node


def param_keys(study: Study) -> list[str]:
    """The searched keys: the search file's, then any a custom search space drew."""
    keys = list(search_space(study.model))
    fixed = {
        o.partition("=")[0]
        for o in [*MODELS[study.model], *PER_TARGET.get((study.model, study.target), [])]
    }
    for trial in study.trials:
        for key in trial.overrides:
            if key in keys or key in fixed or key in LAUNCH_KEYS or key.startswith(LAUNCH_PREFIXES):
                continue
            if key.startswith("model.") and key not in keys:
                keys.append(key)
    return keys


def trail_csv(study: Study) -> str:
    space = param_keys(study)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "trial",
            METRIC,
            WARM,
            COLD,
            *space,
            "best_epoch",
            "epochs",
            "stop",
            "budget_bound",
            "train_min",
            "folder",
            "overrides",
        ]
    )
    for t in study.trials:
        kept = [
            f"{k}={v}"
            for k, v in t.overrides.items()
            if k not in LAUNCH_KEYS and not k.startswith(LAUNCH_PREFIXES)
        ]
        writer.writerow(
            [
                t.number,
                f"{t.value:.6f}",
                f"{_value(t, WARM):.6f}",
                f"{_value(t, COLD):.6f}",
                *(t.overrides.get(key, "") for key in space),
                t.best_epoch if t.trains else "",
                t.epochs if t.trains else "",
                t.stop,
                int(t.budget_bound),
                f"{t.train_min:.2f}",
                t.where,
                json.dumps(kept),
            ]
        )
    return out.getvalue()


def _short(value: str) -> str:
    """A drawn float in 3 significant digits (the trail CSV keeps every digit)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number == int(number) and "." not in value else f"{number:.3g}"


def option_rows(study: Study) -> list[tuple[str, str, int, Trial]]:
    """Per option and value drawn from a ``choice``: its trial count and its best trial.

    ``(key, value, trials, best)`` for every ``choice(...)`` key of the study's search
    file and every key a custom search space drew, ``best`` the trial with the highest
    cold users' value (then warm) among the done trials that drew it. A TPE study's
    marginal view, not an ablation: trials with one value differ in the others too.
    """
    space = search_space(study.model)
    choices = [k for k in param_keys(study) if k not in space or space[k].startswith("choice(")]
    rows = []
    for key in choices:
        by_value: dict[str, list[Trial]] = {}
        for trial in study.done:
            if key in trial.overrides:
                by_value.setdefault(trial.overrides[key], []).append(trial)
        for value, group in sorted(by_value.items()):
            best = max(group, key=lambda t: (_value(t, COLD), _value(t, WARM), -t.number))
            rows.append((key, value, len(group), best))
    return rows


def option_section(studies: list[Study]) -> list[str]:
    """The text studies' options, value by value (:func:`option_rows`), as markdown."""
    text = [s for s in studies if s.model in TEXT_MODELS and s.done]
    if not text:
        return []
    lines = [
        "## Text options, value by value",
        "",
        "Per searched option of the text studies and per value: how many trials drew it and",
        f"the best of them on `{COLD}` (validation only). A marginal view of a TPE study,",
        "not an ablation: the trials with one value differ in the other options too.",
        "",
        f"| target | study | option | value | trials | best {COLD} | its {WARM} | trial |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for s in text:
        for key, value, count, best in option_rows(s):
            lines.append(
                f"| {s.target} | {s.model} | `{key}` | `{_short(value)}` | {count} "
                f"| {_value(best, COLD):.4f} | {_value(best, WARM):.4f} | {best.number} |"
            )
    return [*lines, ""]


def readme(studies: list[Study], bests: list[TextBest] = (), trials: int = 10) -> str:
    lines = [
        "# Tuning on validation: every model, one budget",
        "",
        "Written by `python experiments/tune_amazon.py export ROOT` from the trial folders of",
        "`python experiments/tune_amazon.py run ROOT`. Data `amazon_bcm`, split seed 0, selection on",
        f"`{METRIC}` at the best validated epoch (the test split is never read). Budget per model",
        "(conf/hparams_search/common/optuna.yaml): the same number of Optuna TPE trials (5 random",
        "start-up trials), each at most 100 epochs at batch 8,192, validated every 5 epochs,",
        "patience 3, at most 15 minutes of training; one thread per trial on the 2-core machine.",
        "A trial is *budget-bound* when its epochs or its clock ran out while its best epoch",
        "was its last validated one (patience never stopped it).",
        "",
    ]
    for target in TARGETS:
        rows = [s for s in studies if s.target == target and s.best is not None]
        if not rows:
            continue
        lines += [
            f"## Target {target}",
            "",
            f"| model | trials | best {METRIC} | its {WARM} | its {COLD} | best parameters "
            "| best epoch / epochs | budget-bound trials | minutes (all trials) | experiment |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for s in sorted(rows, key=lambda s: -s.best.value):
            b = s.best
            params = ", ".join(
                f"`{k}={_short(b.overrides[k])}`" for k in param_keys(s) if k in b.overrides
            )
            epochs = f"{b.best_epoch} / {b.epochs}" if b.trains else "-"
            if b.budget_bound:
                epochs += " (budget-bound)"
            bound = sum(t.budget_bound for t in s.done)
            minutes = sum(t.train_min for t in s.done)
            done = len(s.trials) >= trials
            lines.append(
                f"| {s.model} | {len(s.done)}{'' if done else f' of {trials} (incomplete)'} "
                f"| {b.value:.4f} | {_value(b, WARM):.4f} "
                f"| {_value(b, COLD):.4f} | {params} | {epochs} | {bound} "
                f"| {minutes:.0f} | {f'`tuned/{s.name}`' if done else '-'} |"
            )
        lines.append("")
    if bests:
        lines += [
            "## The text model of the cold-start comparison (`tuned/amazon_<target>_text_best`)",
            "",
            f"Chosen on validation only: among every trial of the text studies, the highest "
            f"`{COLD}` whose `{WARM}` is at least the best non-text model's (the highest "
            f"`{WARM}` of the non-text studies' best trials).",
            "",
            f"| target | study | trial | {COLD} | {WARM} | warm bar (model) | meets the bar |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for b in bests:
            lines.append(
                f"| {b.target} | {b.study.name} | {b.trial.number} | {_value(b.trial, COLD):.4f} "
                f"| {_value(b.trial, WARM):.4f} | {b.warm_bar:.4f} ({b.bar_model}) "
                f"| {'yes' if b.meets_bar else 'no'} |"
            )
        lines.append("")
    lines += option_section(studies)
    lines += ["## Search spaces", ""]
    for model in sorted({s.model for s in studies}):
        lines.append(
            f"- `{model}` (conf/hparams_search/{model}_optuna.yaml): "
            + "; ".join(f"`{k}`: `{v}`" for k, v in search_space(model).items())
        )
    lines.append("")
    return "\n".join(lines)


@dataclass
class TextBest:
    """The text model the cold-start comparison uses, chosen on validation only."""

    target: str
    study: Study
    trial: Trial
    warm_bar: float
    bar_model: str
    meets_bar: bool

    @property
    def name(self) -> str:
        return f"amazon_{self.target}_text_best"


def _value(trial: Trial, key: str) -> float:
    value = trial.metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def text_best(studies: list[Study], target: str) -> TextBest | None:
    """Among every trial of the text studies, the best on cold users' validation NDCG@20
    whose warm users' validation NDCG@20 is not below the best non-text model's.

    The bar is the highest ``val/warm/ndcg@20`` of the non-text studies' best trials (each
    chosen on ``val/all/ndcg@20``). When no text trial reaches it, the best cold one is
    taken anyway and marked (``meets_bar=False``). Test figures are never read.
    """
    text = [s for s in studies if s.target == target and s.model in TEXT_MODELS]
    others = [s for s in studies if s.target == target and s.model not in TEXT_MODELS]
    trials = [(s, t) for s in text for t in s.done if not math.isnan(_value(t, COLD))]
    if not trials:
        return None
    bars = [(_value(s.best, WARM), s.model) for s in others if s.best is not None]
    bars = [b for b in bars if not math.isnan(b[0])]
    bar, bar_model = max(bars) if bars else (-math.inf, "none")
    passing = [(s, t) for s, t in trials if _value(t, WARM) >= bar]
    pool = passing or trials
    study, trial = max(pool, key=lambda st: (_value(st[1], COLD), -st[1].number))
    return TextBest(target, study, trial, bar, bar_model, bool(passing))


def export(
    root: Path,
    targets: list[str],
    models: list[str],
    trail_dir: Path = TRAIL_DIR,
    tuned_dir: Path = TUNED_DIR,
    trials: int = 10,
) -> list[Study]:
    """Write the trails, the tuned experiment files and the summary.

    A study with fewer than ``trials`` trials (the budget) gets its trail (to be
    continued) but no tuned experiment file, and is marked incomplete in the summary.
    """
    from gnnrec.utils.io import atomic_write

    def write(path: Path, text: str) -> None:
        atomic_write(path, lambda tmp: tmp.write_text(text))

    trail_dir.mkdir(parents=True, exist_ok=True)
    tuned_dir.mkdir(parents=True, exist_ok=True)
    studies = []
    for target in TARGETS:
        for model in MODELS:
            study = read_trials(root, target, model, trail_dir)
            if study.best is None:
                continue
            studies.append(study)
            if target in targets and model in models:
                write(trail_dir / f"{study.name}.csv", trail_csv(study))
                if len(study.trials) < trials:
                    print(f"{study.name}: {len(study.trials)} of {trials} trials, no tuned file")
                    continue
                write(tuned_dir / f"{study.name}.yaml", tuned_experiment(study))
                print(f"{study.name}: best trial {study.best.number} {study.best.value:.4f}")
    studies_done = [s for s in studies if len(s.trials) >= trials]
    bests = []
    for target in targets:
        best = text_best(studies_done, target)
        if best is None:
            continue
        bests.append(best)
        why = (
            f"# The text model for target {target}'s cold-start comparison, chosen on validation:"
            f"\n# the highest {COLD} ({_value(best.trial, COLD):.4f}) among the text trials whose"
            f"\n# {WARM} ({_value(best.trial, WARM):.4f}) is "
            + (
                f"at least the best non-text model's ({best.bar_model}, {best.warm_bar:.4f})."
                if best.meets_bar
                else f"BELOW every non-text bar ({best.bar_model}, {best.warm_bar:.4f}): none reached it."
            )
            + f"\n# From {best.study.name}:"
        )
        write(
            tuned_dir / f"{best.name}.yaml",
            tuned_experiment(best.study, best.trial, best.name, why),
        )
        print(f"{best.name}: {best.study.name} trial {best.trial.number}")
    write(trail_dir / "README.md", readme(studies, bests, trials))
    return studies


def _clock(text: str) -> datetime:
    """``HH:MM`` as today's local time; one that has passed is an error, not tomorrow."""
    try:
        parsed = datetime.strptime(text, "%H:%M")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--until wants HH:MM (local time), got {text!r}"
        ) from None
    now = datetime.now()
    until = now.replace(hour=parsed.hour, minute=parsed.minute, second=0, microsecond=0)
    if until <= now:
        raise argparse.ArgumentTypeError(f"--until {text} has passed (it is {now:%H:%M})")
    return until


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "export"])
    parser.add_argument("root", type=Path, help="folder of the trial folders and studies")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--trials", type=int, default=10, help="trials per study (the budget)")
    parser.add_argument("--jobs", type=int, default=2, help="studies at once (one thread each)")
    parser.add_argument(
        "--override", nargs="*", default=[], help="more overrides for every trial (run)"
    )
    parser.add_argument(
        "--trail-dir",
        type=Path,
        default=TRAIL_DIR,
        help="trails: written by export, read by both (trials of earlier sessions)",
    )
    parser.add_argument("--tuned-dir", type=Path, default=TUNED_DIR, help="export: experiments")
    parser.add_argument(
        "--until",
        type=_clock,
        default=None,
        help="run: HH:MM (local time); start only trials expected to end by then",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.action == "export":
        export(root, args.targets, args.models, args.trail_dir, args.tuned_dir, args.trials)
        return 0
    todo = [(t, m) for t in args.targets for m in args.models]
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(
            pool.map(
                lambda tm: launch(
                    root, *tm, args.trials, args.override, args.trail_dir, args.until
                ),
                todo,
            )
        )
    return int(any(codes))


if __name__ == "__main__":
    sys.exit(main())

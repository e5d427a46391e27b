"""experiments/tune_amazon.py: studies on one budget, trails, and tuned experiment files.

The end-to-end test runs the real driver (real ``gnnrec-train -m`` Optuna sweeps) on
MovieLens-100K made tiny by overrides, exports the studies, and reruns the best trial from
the written experiment file: it must give the trial's validation figure again.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from gnnrec.config import CONFIG_DIR, compose_config

pytest.importorskip("optuna")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

REPO = CONFIG_DIR.parent
SCRIPT = REPO / "experiments" / "tune_amazon.py"
TINY = [
    "data=ml100k",
    "data.target_domain=ml-100k",
    "trainer.max_epochs=2",
    "trainer.eval_every=1",
    "trainer.limit_train_batches=3",
    "trainer.checkpoint=false",
    "eval.sampled_negatives=0",
]


def load_script():
    spec = importlib.util.spec_from_file_location("tune_amazon", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune_amazon"] = module
    spec.loader.exec_module(module)
    return module


tune = load_script()


def test_every_model_has_a_search_on_the_common_budget():
    """Each tuned model's search includes common/optuna.yaml and sets no budget of its own."""
    budget_keys = {key.split(".")[-1] for key in tune.BUDGET_KEYS}
    for model in tune.MODELS:
        conf = yaml.safe_load(tune.search_file(model).read_text())
        assert "common/optuna" in conf["defaults"], model
        assert "trainer" not in conf, f"{model} sets its own budget"
        assert not budget_keys & set(conf["hydra"]["sweeper"]), model
        assert "n_trials" not in conf["hydra"]["sweeper"], f"{model} sets its own trial budget"
        cfg = compose_config([f"hparams_search={model}_optuna", "experiment=cdr_amazon_movies"])
        assert cfg.trainer.max_epochs == 100 and cfg.trainer.batch_size == 8192
        assert cfg.optimized_metric.startswith("val/")
        chosen = tune.search_groups(model)["model"]
        model_file = yaml.safe_load((CONFIG_DIR / "model" / f"{chosen}.yaml").read_text())
        assert cfg.model._target_ == model_file["_target_"]


def test_budget_bound_is_a_best_last_validation_when_the_budget_ended():
    def trial(**metrics):
        return tune.Trial(Path("x"), 0, {}, {tune.METRIC: 0.1, **metrics})

    assert trial(epochs=100, best_epoch=99, stopped_early=0.0).budget_bound
    assert not trial(epochs=100, best_epoch=94, stopped_early=0.0).budget_bound  # 99 was worse
    assert not trial(epochs=40, best_epoch=24, stopped_early=1.0).budget_bound  # patience
    # the clock stopped it after epoch 23; its last validation (epoch 19) was its best
    assert trial(epochs=23, best_epoch=19, stopped_on_time=1.0).budget_bound
    assert not trial(epochs=40, best_epoch=24, stopped_on_time=1.0).budget_bound
    every_2 = tune.Trial(Path("x"), 0, {"trainer.eval_every": "2"}, {"epochs": 10, "best_epoch": 7})
    assert not every_2.budget_bound  # validated at epoch 9 too, and it was worse
    assert not trial().budget_bound  # nothing trained (item-KNN): a fit, not a budget
    assert trial().stop == "fit"


def test_best_is_the_highest_validation_value_earliest_on_ties():
    study = tune.Study("movies", "mf")
    for number, value in enumerate([0.1, 0.3, 0.2, 0.3]):
        study.trials.append(tune.Trial(Path(str(number)), number, {}, {tune.METRIC: value}))
    study.trials.append(tune.Trial(Path("f"), 4, {}, {}))  # failed: no value
    assert study.best.number == 1
    assert len(study.done) == 4


def _study(model, values):
    study = tune.Study("movies", model)
    for number, (total, warm, cold) in enumerate(values):
        metrics = {tune.METRIC: total, tune.WARM: warm, tune.COLD: cold}
        study.trials.append(tune.Trial(Path(f"{model}{number}"), number, {}, metrics))
    return study


def test_text_best_is_the_best_cold_trial_not_worse_on_warm_than_any_baseline():
    studies = [
        _study("lightgcn", [(0.020, 0.012, 0.020), (0.025, 0.015, 0.030)]),  # best: warm 0.015
        _study("mf", [(0.010, 0.016, 0.010)]),  # best by val/all, warm 0.016: the bar
        _study("lightgcn_text", [(0.02, 0.017, 0.040), (0.03, 0.015, 0.090)]),
        _study("lightgcn_text_cold", [(0.01, 0.016, 0.050), (0.01, 0.020, 0.030)]),
    ]
    best = tune.text_best(studies, "movies")
    assert (best.bar_model, best.warm_bar) == ("mf", 0.016)
    # 0.090 is the best cold trial but below the warm bar; 0.050 is the best one above it
    assert (best.study.model, best.trial.number, best.meets_bar) == ("lightgcn_text_cold", 0, True)
    # no text trial reaches the bar: the best cold one, marked
    studies[1] = _study("mf", [(0.010, 0.5, 0.010)])
    best = tune.text_best(studies, "movies")
    assert (best.study.model, best.trial.number, best.meets_bar) == ("lightgcn_text", 1, False)
    assert tune.text_best(studies, "books") is None


def test_text_options_are_broken_down_value_by_value():
    study = _study(
        "lightgcn_text_cold",
        [(0.02, 0.015, 0.030), (0.02, 0.018, 0.035), (0.02, 0.017, 0.025), (0.02, 0.010, 0.035)],
    )
    drawn = [
        {"model.item_bias": "logpop", "model.id_embedding": "gate", "model.align_weight": "0.1"},
        {"model.item_bias": "logpop", "model.id_embedding": "false", "optimizer.lr": "0.001"},
        {"model.item_bias": "none", "model.id_embedding": "gate", "model.align_weight": "0.5"},
        {"model.item_bias": "logpop", "model.id_embedding": "false", "optimizer.lr": "0.002"},
    ]
    for trial, overrides in zip(study.trials, drawn, strict=True):
        trial.overrides.update(overrides)
    study.trials.append(tune.Trial(Path("failed"), 4, {"model.item_bias": "learned"}, {}))
    rows = {(k, v): (n, best.number) for k, v, n, best in tune.option_rows(study)}
    # logpop: 3 trials, cold 0.035 twice, the warmer (trial 1) wins the tie; the failed
    # trial's value is absent; intervals (optimizer.lr) are not options
    assert rows[("model.item_bias", "logpop")] == (3, 1)
    assert rows[("model.item_bias", "none")] == (1, 2)
    assert ("model.item_bias", "learned") not in rows
    assert rows[("model.id_embedding", "gate")] == (2, 0)
    assert rows[("model.id_embedding", "false")] == (2, 1)
    # drawn by the custom search space, not in the search file
    assert rows[("model.align_weight", "0.5")] == (1, 2)
    assert not [k for k, _ in rows if k == "optimizer.lr"]
    page = "\n".join(tune.option_section([study, _study("mf", [(0.01, 0.01, 0.01)])]))
    assert (
        "| movies | lightgcn_text_cold | `model.item_bias` | `logpop` | 3 | 0.0350 | 0.0180 | 1 |"
        in page
    )
    assert "| mf |" not in page


def test_tuned_experiment_files_compose():
    """Every committed tuned file composes and names a model the run can build."""
    tuned = sorted((CONFIG_DIR / "experiment" / "tuned").glob("*.yaml"))
    for path in tuned:
        cfg = compose_config([f"experiment=tuned/{path.stem}"])
        target = path.stem.split("_")[1]
        assert cfg.data.target_domain == target, path
        assert cfg.task_name == f"tuned_{path.stem}"
        assert cfg.model._target_.startswith("gnnrec.models.")


def driver_env(data_root: Path, tmp_path: Path) -> dict[str, str]:
    """The real data, a test-local cache, W&B offline and no hub access."""
    return {
        **os.environ,
        "GNNREC_DATA_DIR": str(data_root),
        "GNNREC_CACHE_DIR": str(tmp_path / "cache"),
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
    }


def run_driver(args: list[str], data_root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=driver_env(data_root, tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_driver_tunes_exports_and_the_tuned_file_reruns_the_best_trial(data_root, tmp_path):
    root = tmp_path / "tune"
    trails = tmp_path / "trails"
    common = ["--targets", "movies", "--jobs", "1", "--trail-dir", str(trails), "--override", *TINY]
    run_driver(
        ["run", str(root), "--models", "mf", "itemknn", "--trials", "2", *common],
        data_root,
        tmp_path,
    )
    # the same command again runs nothing: both studies hold their 2 trials
    again = run_driver(
        ["run", str(root), "--models", "mf", "--trials", "2", *common], data_root, tmp_path
    )
    assert "2 trials done" in again.stdout
    # one more trial continues the study in a new sweep folder
    run_driver(["run", str(root), "--models", "mf", "--trials", "3", *common], data_root, tmp_path)
    assert (root / "movies" / "mf" / "sweep1" / "0" / "metrics.json").is_file()

    conf_dir = tmp_path / "conf"
    run_driver(
        [
            "export",
            str(root),
            "--trail-dir",
            str(trails),
            "--tuned-dir",
            str(conf_dir / "experiment" / "tuned"),
            "--trials",
            "3",
        ],
        data_root,
        tmp_path,
    )
    # item-KNN has 2 of the 3 trials: a trail to continue, no tuned file yet
    assert (trails / "amazon_movies_itemknn.csv").is_file()
    assert not (conf_dir / "experiment" / "tuned" / "amazon_movies_itemknn.yaml").exists()
    assert "2 of 3 (incomplete)" in (trails / "README.md").read_text()
    # the trail: one row per trial, values as in each trial's metrics.json
    study = tune.read_trials(root, "movies", "mf")
    assert len(study.trials) == 3
    with (trails / "amazon_movies_mf.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2]
    for row, trial in zip(rows, study.trials, strict=True):
        metrics = json.loads((trial.folder / "metrics.json").read_text())
        assert float(row[tune.METRIC]) == pytest.approx(metrics[tune.METRIC], abs=1e-6)
        assert row["optimizer.lr"] == trial.overrides["optimizer.lr"]
        assert row["stop"] == "max_epochs"
    best = max(study.trials, key=lambda t: t.value)
    # the Optuna study agrees on values and on the best trial
    import optuna

    stored = optuna.load_study(
        study_name="amazon_movies_mf",
        storage=f"sqlite:///{root / 'logs' / 'optuna' / 'amazon_movies_mf.db'}",
    )
    assert sorted(t.value for t in stored.trials) == pytest.approx(
        sorted(t.value for t in study.trials)
    )
    assert stored.best_value == pytest.approx(best.value)
    readme = (trails / "README.md").read_text()
    assert f"{best.value:.4f}" in readme and "`tuned/amazon_movies_mf`" in readme
    assert "itemknn" in readme

    # the tuned experiment file reruns the best trial: same config, same validation figure
    tuned = conf_dir / "experiment" / "tuned" / "amazon_movies_mf.yaml"
    text = tuned.read_text()
    assert f"trial {best.number}" in text
    # rerun it under a name the repository's own conf/ cannot shadow: Hydra searches the
    # package's conf/ before hydra.searchpath, and conf/experiment/tuned/ holds real studies
    rerun_name = "rerun_of_the_test_study"
    (conf_dir / "experiment" / "tuned" / f"{rerun_name}.yaml").write_text(text)
    assert not (REPO / "conf" / "experiment" / "tuned" / f"{rerun_name}.yaml").exists()
    run_dir = tmp_path / "rerun"
    env = {**driver_env(data_root, tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gnnrec.train",
            f"hydra.searchpath=[file://{conf_dir}]",
            f"experiment=tuned/{rerun_name}",
            "tracker=none",
            f"hydra.run.dir={run_dir}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rerun = json.loads((run_dir / "metrics.json").read_text())
    assert rerun[tune.METRIC] == pytest.approx(best.value, rel=1e-6)
    trial_cfg = OmegaConf.load(best.folder / ".hydra" / "config.yaml")
    rerun_cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    for key in (
        "model",
        "loss",
        "sampler",
        "optimizer",
        "trainer.batch_size",
        "trainer.max_epochs",
    ):
        assert OmegaConf.select(rerun_cfg, key) == OmegaConf.select(trial_cfg, key), key

    # a later session on a fresh machine: only the trails are left; the study is rebuilt
    # from them and continued, and the trail keeps the earlier trials
    import shutil

    shutil.rmtree(root)
    more = run_driver(
        ["run", str(root), "--models", "mf", "--trials", "4", *common], data_root, tmp_path
    )
    assert "study rebuilt from 3 trials" in more.stdout
    assert (root / "movies" / "mf" / "sweep2" / "0" / "metrics.json").is_file()
    continued = tune.read_trials(root, "movies", "mf", trails)
    assert [t.archived for t in continued.trials] == [True, True, True, False]
    assert [t.value for t in continued.trials[:3]] == pytest.approx(
        [t.value for t in study.trials], abs=1e-6
    )
    stored = optuna.load_study(
        study_name="amazon_movies_mf",
        storage=f"sqlite:///{root / 'logs' / 'optuna' / 'amazon_movies_mf.db'}",
    )
    assert len(stored.trials) == 4
    assert stored.trials[0].params["optimizer.lr"] == pytest.approx(
        float(study.trials[0].overrides["optimizer.lr"])
    )
    run_driver(
        [
            "export",
            str(root),
            "--models",
            "mf",
            "--trail-dir",
            str(trails),
            "--tuned-dir",
            str(conf_dir / "experiment" / "tuned"),
            "--trials",
            "4",
        ],
        data_root,
        tmp_path,
    )
    with (trails / "amazon_movies_mf.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["folder"] for r in rows] == ["sweep0/0", "sweep0/1", "sweep1/0", "sweep2/0"]


def test_summary_shortens_drawn_floats_only():
    assert tune._short("0.043519233520652484") == "0.0435"
    assert tune._short("128") == "128"
    assert tune._short("sampled_softmax") == "sampled_softmax"
    assert tune._short("1e-06") == "1e-06"


def test_until_starts_only_trials_that_end_in_time(tmp_path, capsys):
    """A trial is started only when its expected length ends by --until: with the clock
    budget (15 min + 2) and 10 minutes left, none starts and no sweep folder is made."""
    now = tune.datetime.now()
    assert tune.trial_fits(now, now + tune.timedelta(minutes=17), 17 * 60)
    assert not tune.trial_fits(now, now + tune.timedelta(minutes=17), 17 * 60 + 1)
    code = tune.launch(
        tmp_path, "movies", "mf", 10, trail_dir=None, until=now + tune.timedelta(minutes=10)
    )
    assert code == 0
    assert not (tmp_path / "movies").exists()
    assert "10 trials left; the next one (about 17 min) would not end" in capsys.readouterr().out


def test_until_rejects_a_passed_or_malformed_time(capsys):
    with pytest.raises(SystemExit):
        tune.main(["run", "/nonexistent", "--until", "25:00"])
    assert "--until wants HH:MM (local time), got '25:00'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tune.main(["run", "/nonexistent", "--until", "00:00"])  # today's midnight has passed
    assert "--until 00:00 has passed" in capsys.readouterr().err

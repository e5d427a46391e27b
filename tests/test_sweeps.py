"""Sweeps: Optuna search files, parallel joblib jobs sharing the caches, SLURM submission.

The end-to-end tests run the real ``gnnrec-train -m`` command on MovieLens-100K made
tiny by overrides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gnnrec.config import CONFIG_DIR, register_resolvers, study_seed
from gnnrec.data.cache import read_processed

optuna = pytest.importorskip("optuna")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

GNNREC_TRAIN = Path(sys.executable).parent / "gnnrec-train"
SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))
METRIC = "val/all/ndcg@20"
TINY = [
    "data=ml100k",
    "trainer.max_epochs=1",
    "trainer.eval_every=1",  # the searches' budget validates every 5 epochs
    "trainer.limit_train_batches=2",
    "trainer.progress=false",
    "trainer.checkpoint=false",
    "tracker=none",
    "eval.sampled_negatives=0",
]


def compose_with_hydra(overrides: list[str]):
    """The config including the ``hydra`` node, as ``gnnrec-train -m`` composes it."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def gnnrec_train(args: list[str], data_root: Path, tmp_path: Path, env: dict | None = None):
    """Run ``gnnrec-train`` with tmp cache and log folders; return the finished process."""
    if not GNNREC_TRAIN.is_file():
        pytest.skip(f"{GNNREC_TRAIN} is not installed (pip install -e .)")
    full_env = {
        **os.environ,
        "GNNREC_DATA_DIR": str(data_root),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    cmd = [
        str(GNNREC_TRAIN),
        "-m",
        *args,
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=600)


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"gnnrec-train failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def sweep_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "logs" / "train" / "multiruns").iterdir())


def job_log(job: Path) -> str:
    return "\n".join(p.read_text() for p in job.glob("*.log"))


# ------------------------------------------------------------------- composition


@pytest.mark.parametrize("name", SEARCHES)
def test_hparams_search_composes_an_optuna_study(name, tmp_path):
    assert "lightgcn_optuna" in SEARCHES
    cfg = compose_with_hydra([f"hparams_search={name}", f"paths.log_dir={tmp_path}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert isinstance(sweeper.sampler.seed, int)
    assert cfg.optimized_metric == METRIC
    study = sweeper.study_name
    assert study and "${" not in study
    url = instantiate(sweeper.storage)
    assert url == f"sqlite:///{tmp_path}/optuna/{study}.db"
    assert (tmp_path / "optuna").is_dir()  # SQLite creates the file, not its folder
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    params = [f"{k}={v}" for k, v in sweeper.params.items()]
    space, fixed = create_params_from_overrides(params)
    assert set(space) == set(sweeper.params) and not fixed
    absent = object()
    for key in space:  # a key whose default is null exists too (rgcn's weight_decay)
        assert OmegaConf.select(cfg, key, default=absent) is not absent, (
            f"{name}: {key} is not a config key"
        )


def test_text_cold_search_draws_align_weight_only_with_id_embeddings():
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    from gnnrec.config import ALIGN_WEIGHTS, compose_config, text_cold_search_space
    from gnnrec.run import check_config

    search = ["hparams_search=lightgcn_text_cold_optuna", "data=ml100k"]
    cfg = compose_with_hydra(search)
    sweeper = cfg.hydra.sweeper
    assert sweeper.custom_search_space == "gnnrec.config.text_cold_search_space"
    space, _ = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert "model.align_weight" not in space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = set()
    for _ in range(30):
        trial = study.ask()
        for key, distribution in space.items():
            trial._suggest(key, distribution)
        text_cold_search_space(cfg, trial)
        if trial.params["model.id_embedding"] is False:
            assert "model.align_weight" not in trial.params
        else:
            drawn.add(trial.params["model.align_weight"])
        # every trial's overrides, as the sweeper writes them, pass the start-time checks
        check_config(compose_config([*search, *(f"{k}={v}" for k, v in trial.params.items())]))
    assert drawn == set(ALIGN_WEIGHTS)
    fixed = optuna.create_study().ask()  # a value fixed on the command line is kept
    assert fixed.suggest_categorical("model.id_embedding", ["gate"]) == "gate"
    fixed.set_user_attr("model.align_weight", 0.3)
    text_cold_search_space(cfg, fixed)
    assert "model.align_weight" not in fixed.params


def test_launchers_compose():
    cfg = compose_with_hydra(["hydra/launcher=joblib"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.cpus_per_task) == ("gpu", 720, 8)
    assert OmegaConf.to_container(launcher.setup, resolve=True) == ["export OMP_NUM_THREADS=8"]


# -------------------------------------------------------------------- end to end


def test_joblib_jobs_share_the_caches(data_root, tmp_path):
    """Two parallel jobs on an empty cache: data preprocessed once, item texts encoded once."""
    proc = gnnrec_train(
        [
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "model=text_zeroshot",
            "model.user_input=mean",  # item embeddings only
            "seed=0,1",
            *TINY,
        ],
        data_root,
        tmp_path,
    )
    check_ok(proc)
    (sweep,) = sweep_dirs(tmp_path)
    jobs = job_dirs(sweep)
    assert len(jobs) == 2
    for job, seed in zip(jobs, (0, 1), strict=True):
        assert METRIC in json.loads((job / "metrics.json").read_text())
        assert f"seed={seed}" in OmegaConf.load(job / ".hydra" / "overrides.yaml")

    (entry,) = (tmp_path / "cache" / "processed").iterdir()
    data = read_processed(entry)
    assert (data.num_users, data.num_items) == (943, 1682)
    logs = [job_log(job) for job in jobs]
    built = [log.count("preprocessed AtomicSource") for log in logs]
    loaded = [log.count("loaded preprocessed data from the cache") for log in logs]
    assert sorted(built) == [0, 1] and sorted(loaded) == [0, 1], logs

    (emb,) = (tmp_path / "cache" / "embeddings").glob("*.npy")
    assert emb.name.startswith("items-")
    assert np.load(emb, allow_pickle=False).shape == (1682, 384)
    # The encoder loads lazily, on the first encode: one job loads it, the other reads the cache.
    encoded = [log.count("loaded text encoder") for log in logs]
    assert sorted(encoded) == [0, 1], "item texts were encoded more than once"


def test_text_cold_optuna_sweep_runs_its_trials(data_root, tmp_path):
    args = ["hparams_search=lightgcn_text_cold_optuna", "hydra.sweeper.n_trials=3", *TINY]
    check_ok(gnnrec_train(args, data_root, tmp_path))
    study_name = "lightgcn_text_cold_ml100k_ml-100k"
    storage = f"sqlite:///{tmp_path}/logs/optuna/{study_name}.db"
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 3
    (sweep,) = sweep_dirs(tmp_path)
    for trial, job in zip(trials, job_dirs(sweep), strict=True):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        assert {f"{key}={value}" for key, value in trial.params.items()} <= set(overrides)
        with_ids = trial.params["model.id_embedding"] is not False
        assert ("model.align_weight" in trial.params) == with_ids
        assert trial.value == pytest.approx(json.loads((job / "metrics.json").read_text())[METRIC])


def test_optuna_sweep_stores_and_resumes_its_study(data_root, tmp_path):
    args = ["hparams_search=lightgcn_optuna", "hydra.sweeper.n_trials=2", *TINY]
    check_ok(gnnrec_train(args, data_root, tmp_path))
    study_name = "lightgcn_ml100k_ml-100k"
    storage = f"sqlite:///{tmp_path}/logs/optuna/{study_name}.db"
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 2

    (sweep,) = sweep_dirs(tmp_path)
    for trial, job in zip(trials, job_dirs(sweep), strict=True):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        for key, value in trial.params.items():
            assert f"{key}={value}" in overrides
        assert trial.value == pytest.approx(json.loads((job / "metrics.json").read_text())[METRIC])
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_params"] == study.best_params

    # The same command adds trials to the same study; the sampler seed is offset by the
    # trials already done, so the random start-up trials are not repeated.
    resume = [*args, "hydra.sweeper.n_trials=1"]
    check_ok(gnnrec_train(resume, data_root, tmp_path))
    assert len(optuna.get_all_study_summaries(storage)) == 1
    study = optuna.load_study(study_name=study_name, storage=storage)
    again = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert [t.number for t in again] == [0, 1, 2]
    assert [t.value for t in again[:2]] == [t.value for t in trials]
    assert again[2].params not in [t.params for t in trials]
    assert len(sweep_dirs(tmp_path)) == 2


def test_slurm_launcher_writes_the_sbatch_script(data_root, tmp_path):
    """SLURM is not installed: fake ``srun``/``sbatch`` capture the array job's script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    copy = tmp_path / "submitted.sh"
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {copy}\necho "sbatch: error: no cluster here" >&2\nexit 1\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    proc = gnnrec_train(
        [
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu_test",
            "hydra.launcher.timeout_min=90",
            "model=mf",
            "seed=0,1,2",
            *TINY,
        ],
        data_root,
        tmp_path,
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode != 0 and "no cluster here" in proc.stdout + proc.stderr
    script = copy.read_text()
    for line in (
        "#SBATCH --partition=gpu_test",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --mem=32GB",
        "#SBATCH --array=0-2%3",  # three runs, all at once (array_parallelism: 32)
        "#SBATCH --job-name=gnnrec-train",
        "export OMP_NUM_THREADS=8",
    ):
        assert re.search(rf"^{re.escape(line)}$", script, re.M), f"{line!r} not in\n{script}"
    (sweep,) = sweep_dirs(tmp_path)
    command = re.search(r"^srun .* (\S+) -u -m submitit\.core\._submit (\S+)$", script, re.M)
    assert command, script
    assert Path(command.group(1)).name.startswith("python")
    assert command.group(2).startswith(str(sweep / ".submitit"))

    # One pickled run per array task; run task 0 as a compute node would.
    from submitit.core.utils import DelayedSubmission

    runs = {}
    for path in (sweep / ".submitit").rglob("*.pkl"):
        overrides, _, job_num = DelayedSubmission.load(path).args[:3]
        runs[job_num] = (path, overrides)
    assert sorted(runs) == [0, 1, 2]
    assert [f"seed={n}" in runs[n][1] for n in range(3)] == [True] * 3
    slurm_env = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4243",
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_JOB_NODELIST": "localhost",
    }
    code = (
        "import sys; from submitit.core.utils import DelayedSubmission; "
        "print('RETURNED', DelayedSubmission.load(sys.argv[1]).result().return_value)"
    )
    node = subprocess.run(
        [sys.executable, "-c", code, str(runs[0][0])],
        env={**os.environ, "GNNREC_DATA_DIR": str(data_root), "OMP_NUM_THREADS": "1", **slurm_env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert node.returncode == 0, node.stderr[-3000:]
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert f"RETURNED {metrics[METRIC]}" in node.stdout


def test_study_seed_counts_the_trials_already_done(tmp_path):
    db = tmp_path / "study.db"
    assert study_seed(7, str(db), "s") == 7  # no file yet
    storage = f"sqlite:///{db}"
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    optuna.create_study(study_name="other", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    assert study_seed(7, str(db), "s") == 10
    assert study_seed(7, str(db), "other") == 8
    assert study_seed(7, str(db), "absent") == 7

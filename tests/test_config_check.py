"""Every config value is checked before any work, and errors name the key the user writes."""

from __future__ import annotations

import itertools
import json
import logging
import shlex
import typing
from pathlib import Path

import pandas as pd
import pytest

from gnnrec.api import compose, train
from gnnrec.config import CONFIG_DIR
from gnnrec.config_check import mismatch
from gnnrec.errors import ConfigError
from gnnrec.features.encoder import DTYPES, POOLINGS, Dtype, Pooling
from gnnrec.models.emcdr import _ACTIVATIONS, Activation
from gnnrec.run import check_config
from gnnrec.train import Trainer
from tests.test_config import GROUPS, group_options
from tests.test_new_user import cli

QUICK = ["tracker=none", "trainer.progress=false", "encoder=none"]


def check(*overrides: str) -> None:
    check_config(compose(list(overrides)))


def error_of(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        check(*overrides)
    return str(info.value)


def write_domain(root: Path, rows: list[tuple[str, str]], num_items: int) -> Path:
    """One domain ``a`` in the folder format: interactions in time order, ``num_items`` items."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(root / "a.inter.csv", index=False)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(num_items)], "title": "t"})
    items.to_csv(root / "a.item.csv", index=False)
    return root


def folder(root: Path, cache: Path) -> list[str]:
    return [
        "data=folder",
        f"data.path={root}",
        "data.target_domain=a",
        f"paths.cache_dir={cache}",
        *QUICK,
    ]


# ------------------------------------------------------------- types, before any work


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: expected an integer"),
        (["trainer.max_epochs=1.5"], "trainer.max_epochs=1.5: expected an integer"),
        (["trainer.patience=abc"], "trainer.patience=abc: expected an integer"),
        (["seed=abc"], "seed=abc: expected an integer"),
        (["deterministic=maybe"], "deterministic=maybe: expected true or false"),
        (["optimizer.lr=abc"], "optimizer.lr=abc: expected a number"),
        (["loss.l2=[1]"], "loss.l2=[1]: expected a number"),
        (["eval.ks=[10,x]"], "eval.ks=[10,x]: expected a list of integers"),
        (
            ["eval.metrics=ndcg"],
            "eval.metrics=ndcg: expected a list of strings; write a list: eval.metrics=[ndcg]",
        ),
        (
            ["trainer.precision=32"],
            "trainer.precision=32: expected a string; quote a number to pass it as text: "
            "trainer.precision='32'",
        ),
        (
            ["trainer.limit_train_batches=true"],
            "trainer.limit_train_batches=true: expected a number or null",
        ),
        (["test_curve_every=-1"], "test_curve_every=-1: expected an integer >= 0"),
        (["data.split.fixed=yes"], "data.split.fixed=yes: expected true, false or 'auto'"),
        (["data.split.seed=x"], "data.split.seed=x: expected an integer"),
        (
            ["data.preprocess.dedup=lst"],
            "data.preprocess.dedup=lst: expected one of 'last', 'first'",
        ),
        (["sampler.scope=dom"], "sampler.scope=dom: expected one of 'domain', 'all'"),
        (
            ["scheduler=cosine", "scheduler.interval=stp"],
            "scheduler.interval=stp: expected one of 'step', 'epoch'",
        ),
        (
            ["scheduler=plateau", "scheduler.patience=x"],
            "scheduler.patience=x: expected an integer",
        ),
        (["trainer.grad_clip=x"], "trainer.grad_clip=x: expected a number or null"),
        (["optimizer.weight_decay=x"], "optimizer.weight_decay=x: expected a number"),
        (
            ["model=emcdr", "model.mapping=mpl"],
            "model.mapping=mpl: expected one of 'mlp', 'linear'",
        ),
        (["model=rgcn", "model.decoder=x"], "model.decoder=x: expected one of 'dot', 'distmult'"),
        (
            ["model=lightgcn", "model.alpha=[a]"],
            "model.alpha=[a]: expected a list of numbers or null",
        ),
        (
            ["encoder.pooling=max"],
            "encoder.pooling=max: expected 'mean', 'cls', 'last_token' or null",
        ),
        (
            ["tracker.tags=abc"],
            "tracker.tags=abc: expected a list of strings; write a list: tracker.tags=[abc]",
        ),
        (
            ["data=amazon_fk", "data.source.domain_names=food"],
            "data.source.domain_names=food: expected a list of strings; write a list: "
            "data.source.domain_names=[food]",
        ),
    ],
)
def test_a_value_of_the_wrong_type_fails_naming_key_value_and_type(overrides, message):
    # Before: '<' not supported between 'str' and 'int' (max_epochs), a string formatting
    # error (seed), a failure after the first epoch (patience), or a crash after loading.
    assert error_of(*overrides) == message


def test_an_interpolated_value_is_named_by_the_key_the_user_sets():
    # trainer.device and encoder.device read ${device}; the error names device once.
    assert error_of("device=1") == (
        "device=1: expected a string; quote a number to pass it as text: device='1'"
    )
    overrides = ["data=folder", "data.path=/x", "data.target_domain=a", "data.domains=[1,b]"]
    assert error_of(*overrides) == (
        "data.domains=[1,b]: expected a string, a list of strings or null"
    )


def test_an_interpolation_that_cannot_resolve_names_its_key():
    assert error_of("data.source.path=${nowhere.path}") == (
        "data.source.path=${nowhere.path}: cannot be resolved: Interpolation key "
        "'nowhere.path' not found"
    )


def test_several_errors_come_in_one_message():
    assert error_of("seed=abc", "trainer.batch_size=x") == (
        "seed=abc: expected an integer; trainer.batch_size=x: expected an integer"
    )


def test_a_key_the_target_does_not_take_fails_at_start():
    # Before: a TypeError from the model's constructor after the data was loaded.
    assert error_of("+model.embeding_dim=32") == (
        "model.embeding_dim: gnnrec.models.lightgcn.LightGCN has no option 'embeding_dim'; "
        "its options: embedding_dim, num_layers, alpha, init_std"
    )
    assert error_of("+model.num_users=3") == (
        "model.num_users is passed in by the run, not set in the config; remove it"
    )
    assert error_of("+data.split.zero_shot=true") == (
        "data.split.zero_shot is passed in by the run, not set in the config; remove it"
    )


def test_the_type_messages():
    assert mismatch(3, int) is None and mismatch(3, float) is None
    assert mismatch(True, int) == "expected an integer"
    assert mismatch(None, int | None) is None
    assert mismatch("x", tuple[int, int], "k") == (
        "expected a list of 2 (an integer, an integer); write a list: k=[x]"
    )
    assert mismatch([1, 2], tuple[int, int]) is None
    assert mismatch({"a": 1}, dict[str, str]) == "expected a mapping to strings"
    assert mismatch("p", Path) is None


def test_literal_hints_list_the_same_choices_as_the_code():
    assert set(typing.get_args(Pooling)) == set(POOLINGS)
    assert set(typing.get_args(Dtype)) == {"auto", *DTYPES}
    assert set(typing.get_args(Activation)) == set(_ACTIVATIONS)


# ------------------------------------------------------------- ranges, where they are owned


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epochs=0"], "trainer.max_epochs must be >= 1, got 0"),
        (["trainer.batch_size=0"], "trainer.batch_size must be >= 1, got 0"),
        (["trainer.patience=-1"], "trainer.patience must be >= 0 (0: never stop early), got -1"),
        (
            ["trainer.limit_train_batches=0"],
            "trainer.limit_train_batches must be a count >= 1, a fraction in (0, 1] or null "
            "(all batches), got 0; 0 batches would train nothing",
        ),
        (
            ["trainer.limit_train_batches=-2"],
            "trainer.limit_train_batches must be a count >= 1, a fraction in (0, 1] or null "
            "(all batches), got -2; -2 batches would train nothing",
        ),
        (
            ["trainer.limit_train_batches=1.5"],
            "trainer.limit_train_batches as a fraction must be in (0, 1], got 1.5",
        ),
        (
            ["trainer.max_epochs=3", "trainer.eval_every=5"],
            "trainer.eval_every=5 is greater than trainer.max_epochs=3: no epoch would be "
            "validated, so no model could be selected; set trainer.eval_every to at most 3",
        ),
        (["sampler.popularity_alpha=-1"], "sampler.popularity_alpha must be >= 0, got -1"),
        (["trainer.grad_clip=0"], "trainer.grad_clip must be positive or null (off), got 0"),
        (["scheduler=cosine", "scheduler.eta_min=-1"], "scheduler.eta_min must be >= 0, got -1"),
        (["scheduler=plateau", "scheduler.factor=2"], "scheduler.factor must be in (0, 1), got 2"),
        (
            ["scheduler=plateau", "optimized_metric=null"],
            "scheduler PlateauSchedule is stepped on the monitored validation metric, but "
            "optimized_metric=null, so nothing is validated; choose another scheduler (e.g. "
            "scheduler=cosine) or a run with validation",
        ),
        (
            ["scheduler=plateau", "data=gowalla"],
            "scheduler PlateauSchedule is stepped on the monitored validation metric, but this "
            "data has no validation split (a fixed split without val rows), so nothing is "
            "validated; choose another scheduler (e.g. scheduler=cosine) or a run with "
            "validation",
        ),
        (["data.split.cold_fraction=1.0"], "data.split.cold_fraction must be in [0, 1), got 1.0"),
        (
            ["data.preprocess.kcore=-1"],
            "data.preprocess.kcore must be an integer >= 0, got -1",
        ),
        (["eval.ks=[0]"], "eval.ks must be positive integers, got [0]"),
        (
            ["+trainer.monitor=val/all/recall@20"],
            "trainer.monitor=val/all/recall@20 is set from optimized_metric; set "
            "optimized_metric=val/all/recall@20 instead",
        ),
    ],
)
def test_a_value_out_of_range_fails_at_start_naming_the_key(overrides, message):
    # Before: limit_train_batches=0 trained nothing and exited 0; eval_every > max_epochs
    # never validated (best_epoch=-1); a hand-set trainer.monitor was silently replaced.
    assert error_of(*overrides) == message


def test_fast_dev_run_validates_its_one_epoch():
    trainer = Trainer(max_epochs=3, eval_every=5, fast_dev_run=True, device="cpu")
    assert (trainer.max_epochs, trainer.eval_every, trainer.limit_train_batches) == (1, 1, 1)


def test_a_data_set_known_to_have_no_validation_refuses_a_validation_metric_at_start():
    # The LightGCN files are a fixed split without val rows: this failed after loading.
    assert error_of("data=gowalla", "optimized_metric=val/all/ndcg@20") == (
        "optimized_metric='val/all/ndcg@20', but this data has no validation split (a fixed "
        "split without val rows); set optimized_metric=auto (the last epoch is kept) or "
        "optimized_metric=null"
    )
    check("data=gowalla", "optimized_metric=val/all/ndcg@20", "data.split.fixed=false")
    check("data=gowalla")  # auto: the last epoch is kept


def test_one_domain_name_is_one_domain_not_its_letters(tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["data=folder", f"data.path={tmp_path}", "data.domains=books"])
    check_config(cfg)
    assert instantiate(cfg.data.source).domains == ["books"]  # was ['b', 'o', 'o', 'k', 's']


# ------------------------------------------------------------- every shipped config passes


def _documented_sweeps() -> list[list[str]]:
    """The ``gnnrec-train -m experiment=...`` lines of the experiment files, expanded."""
    runs = []
    for path in sorted((CONFIG_DIR / "experiment").glob("*.yaml")):
        for line in path.read_text().splitlines():
            if not line.startswith("#   gnnrec-train -m experiment="):
                continue
            args = shlex.split(line[1:], comments=True)[2:]
            args = [a for a in args if not a.startswith("seed=")]
            choices = [
                [f"{k}={v}" for v in (value.split(",") if "{" not in value else [value])]
                for k, value in (a.split("=", 1) for a in args)
            ]
            runs += [list(combo) for combo in itertools.product(*choices)]
    return runs


def _option_overrides(group: str, option: str, tmp_path: Path) -> list[str]:
    overrides = [f"{group}={option}"]
    if group == "data" and option == "folder":
        overrides += [f"data.path={tmp_path}", "data.domains=[a]", "data.target_domain=a"]
    if group == "encoder" and option == "hf":
        overrides += ["encoder.model=minilm"]
    if group == "sampler" and option == "in_batch":
        overrides += ["loss=softmax"]  # BPR needs sampled negatives, by design
    return overrides


CASES = [
    *[(g, o) for g in GROUPS for o in group_options(g)],
    *[("sweep", tuple(run)) for run in _documented_sweeps()],
]


@pytest.mark.parametrize(
    ("group", "option"), CASES, ids=[f"{g}={' '.join(o) if g == 'sweep' else o}" for g, o in CASES]
)
def test_every_shipped_config_passes_the_checks(group, option, tmp_path):
    overrides = list(option) if group == "sweep" else _option_overrides(group, option, tmp_path)
    check(*overrides)


def test_the_documented_sweeps_are_found():
    runs = [" ".join(r) for r in _documented_sweeps()]
    assert "experiment=cdr_amazon_books model=bitgcf" in runs
    assert "experiment=zeroshot_amazon_movies model=text_zeroshot" in runs
    assert "experiment=ablation_text model.num_layers=0" in runs
    assert 'experiment=ablation_text data.text.template="{title}"' in runs


# ------------------------------------------------------------- the command line and sweeps


def test_the_command_line_prints_one_line(tmp_path):
    proc = cli("trainer.max_epochs=abc", "tracker=none", f"hydra.run.dir={tmp_path}", timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["gnnrec-train: error: trainer.max_epochs=abc: expected an integer"]


def test_each_job_of_a_sweep_fails_at_start(tmp_path):
    # A bad value used to fail after training (optimized_metric) or after loading the data;
    # now every job stops at the check: the data folder below does not exist.
    proc = cli(
        "-m",
        "trainer.max_epochs=abc,0",
        "data.source.path=/nonexistent",
        "tracker=none",
        f"hydra.sweep.dir={tmp_path}",
        timeout=120,
    )
    assert proc.returncode == 1
    assert "#1 : trainer.max_epochs=0" in proc.stdout  # the second job ran too
    assert "gnnrec.errors.ConfigError: trainer.max_epochs=abc: expected an integer" in proc.stderr
    assert "DataError" not in proc.stderr


# ------------------------------------------------------------- end to end on tiny data


def test_a_bad_seed_fails_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match=r"^seed=abc: expected an integer$"):
        train(["seed=abc", *QUICK], output_dir=tmp_path)
    assert not (tmp_path / "metrics.json").exists()


def test_a_user_with_every_candidate_fails_before_training(tmp_path):
    # User u0 interacted with all 5 items: at test time its training and validation items
    # are masked and its test item is the truth, so nothing is left to sample negatives
    # from. This crashed in the test evaluation, after training.
    rows = [("u0", f"i{i}") for i in range(5)]
    rows += [(f"u{u}", f"i{(u + j) % 5}") for u in range(1, 8) for j in range(3)]
    root = write_domain(tmp_path / "data", rows, num_items=5)
    overrides = [*folder(root, tmp_path / "cache"), "model=mf", "eval.sampled_negatives=5"]
    with pytest.raises(ConfigError) as info:
        train(overrides, output_dir=tmp_path / "run")
    assert str(info.value) == (
        "eval.sampled_negatives=5: 1 of the 8 users of the test main task (e.g. user index 0) "
        "have no candidate to draw negatives from: each of the 5 candidate items is held out "
        "or masked for them; set eval.sampled_negatives=0"
    )
    assert not (tmp_path / "run" / "history.json").exists()  # nothing was trained
    metrics = train(
        [*overrides[:-1], "eval.sampled_negatives=0", "trainer.max_epochs=1"],
        output_dir=tmp_path / "run0",
    )
    assert metrics["test/all/num_users"] == 8


def test_epochs_after_the_last_validation_are_reported(tmp_path, caplog):
    rows = [(f"u{u}", f"i{(u + j) % 6}") for u in range(8) for j in range(4)]
    root = write_domain(tmp_path / "data", rows, num_items=6)
    overrides = [
        *folder(root, tmp_path / "cache"),
        "model=mf",
        "eval.sampled_negatives=0",
        "trainer.max_epochs=3",
        "trainer.eval_every=2",
    ]
    with caplog.at_level(logging.WARNING, logger="gnnrec.run"):
        train(overrides, output_dir=tmp_path / "run")
    assert (
        "trainer.max_epochs=3 is not a multiple of trainer.eval_every=2: the last 1 epoch(s) "
        "train but are never validated, so they cannot be selected (best_epoch is at most 1)"
    ) in caplog.text
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 3 and "val/all/ndcg@20" in history[1]

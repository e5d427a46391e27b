"""``data.split.seed`` fixes the split while ``seed`` varies initialisation and sampling."""

from gnnrec.config import compose_config
from gnnrec.data.fingerprint import split_fingerprint
from gnnrec.run import load_split


def fingerprint(cache_dir, *overrides):
    data, split = load_split(compose_config([f"paths.cache_dir={cache_dir}", *overrides]))
    return split_fingerprint(data, split), split


def test_split_seed_decouples_the_split_from_the_training_seed(cache_dir, data_root):
    a, split_a = fingerprint(cache_dir, "seed=0")
    b, split_b = fingerprint(cache_dir, "seed=1")
    assert a != b  # by default one seed drives the split too (other cold users)
    assert set(split_a.users_in_group("test", "cold")) != set(
        split_b.users_in_group("test", "cold")
    )
    fixed = [fingerprint(cache_dir, f"seed={s}", "data.split.seed=7")[0] for s in (0, 1, 2)]
    assert len(set(fixed)) == 1
    assert fixed[0] not in (a, b)
    assert fingerprint(cache_dir, "seed=7")[0] == fixed[0]


def test_an_ablation_on_the_same_held_out_rows_pairs_with_the_full_model(cache_dir, data_root):
    full, _ = fingerprint(cache_dir, "seed=0")
    target_only, split = fingerprint(cache_dir, "seed=0", "data.source_edges=false")
    assert (split.train["domain_idx"] == split.target_domain_idx).all()
    assert target_only == full

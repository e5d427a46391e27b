"""Tests of the dataset readers in :mod:`gnnrec.data.sources`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from gnnrec.config import compose_config
from gnnrec.data import (
    AtomicSource,
    DataError,
    FolderSource,
    LightGCNSource,
    RawTables,
    SequenceFoodKitchenSource,
    preprocess,
)

# ---------------------------------------------------------------- small fixtures


def write_folder(root: Path, fmt: str = "csv") -> Path:
    """Two domains, ids with leading zeros, one item with a missing text value."""
    root.mkdir(parents=True, exist_ok=True)
    inter = {
        "books": pd.DataFrame(
            {
                "user_id": ["u1", "u1", "u2"],
                "item_id": ["0001473123", "000100039X", "0001473123"],
                "rating": [5, 3, 4],
                "timestamp": [10, 20, 30],
            }
        ),
        "cds": pd.DataFrame(
            {
                "user_id": ["u2", "u3"],
                "item_id": ["B01", "0002"],
                "rating": [1, 2],
                "timestamp": [5, 6],
            }
        ),
    }
    items = {
        "books": pd.DataFrame(
            {"item_id": ["0001473123", "000100039X"], "title": ["Revelation", "Prophet"]}
        ),
        "cds": pd.DataFrame({"item_id": ["B01", "0002"], "title": ["Kind of Blue", None]}),
    }
    for domain in inter:
        for kind, frame in (("inter", inter[domain]), ("item", items[domain])):
            path = root / f"{domain}.{kind}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.astype({"item_id": str}).to_parquet(path, index=False)
    return root


def assert_ids_are_str(tables: RawTables) -> None:
    for col in ("user", "item", "domain"):
        assert pd.api.types.is_string_dtype(tables.interactions[col]), col
    for col in ("item", "domain"):
        assert pd.api.types.is_string_dtype(tables.items[col]), col


# ------------------------------------------------------------------ FolderSource


def test_folder_csv_round_trip_keeps_leading_zeros(tmp_path):
    tables = FolderSource(write_folder(tmp_path / "d")).load()
    assert_ids_are_str(tables)
    inter = tables.interactions
    assert list(inter.columns) == ["user", "item", "domain", "rating", "timestamp"]
    assert inter["item"].tolist() == ["0001473123", "000100039X", "0001473123", "B01", "0002"]
    assert inter["domain"].tolist() == ["books"] * 3 + ["cds"] * 2
    assert inter["rating"].dtype == np.float64 and inter["timestamp"].dtype == np.float64
    assert tables.items.columns.tolist() == ["item", "domain", "title"]
    assert "0002" in tables.items["item"].tolist()
    assert tables.items["title"].isna().sum() == 1
    assert tables.domains == ["books", "cds"]


def test_folder_parquet_matches_csv(tmp_path):
    csv_tables = FolderSource(write_folder(tmp_path / "c", "csv")).load()
    pq_tables = FolderSource(write_folder(tmp_path / "p", "parquet")).load()
    pd.testing.assert_frame_equal(csv_tables.interactions, pq_tables.interactions)
    pd.testing.assert_frame_equal(csv_tables.items, pq_tables.items)


def test_folder_auto_prefers_csv_and_domains_subset(tmp_path):
    root = write_folder(tmp_path / "d", "csv")
    write_folder(root, "parquet")
    source = FolderSource(root, domains=["cds"])
    assert [p.name for p in source.files()] == ["cds.inter.csv", "cds.item.csv"]
    assert source.load().domains == ["cds"]
    pq = FolderSource(root, file_format="parquet")
    assert {p.suffix for p in pq.files()} == {".parquet"}


def test_folder_instantiable_by_hydra(tmp_path):
    root = write_folder(tmp_path / "d")
    cfg = {"_target_": "gnnrec.data.sources.FolderSource", "path": str(root), "domains": ["books"]}
    source = instantiate(cfg)
    assert isinstance(source, FolderSource)
    assert source.describe() == {"path": str(root), "domains": ["books"], "file_format": "auto"}
    json.dumps(source.describe())
    assert "FolderSource(" in repr(source)


def test_folder_bad_file_format():
    with pytest.raises(ValueError, match=r"^data\.source\.file_format must be one of"):
        FolderSource("x", file_format="xlsx")
    with pytest.raises(ValueError, match=r"^data\.file_format must be one of"):
        FolderSource("x", file_format="xlsx", config_key="data")


def test_errors_name_the_key_the_user_sets(tmp_path):
    """data=folder maps data.path into data.source.path; its errors say data.path."""
    folder = compose_config(["data=folder", f"data.path={tmp_path / 'nowhere'}"])
    with pytest.raises(DataError, match="set data.path to the folder") as err:
        instantiate(folder.data.source).files()
    assert "data.source" not in str(err.value)
    root = write_folder(tmp_path / "d")
    folder = compose_config(["data=folder", f"data.path={root}", "data.domains=[books,music]"])
    with pytest.raises(
        DataError, match=r"music\.inter\.csv.*remove the domain from data\.domains$"
    ):
        instantiate(folder.data.source).files()
    amazon = compose_config(["data=amazon_bcm", f"data.source.path={tmp_path / 'nowhere'}"])
    with pytest.raises(DataError, match=r"set data\.source\.path \(or paths\.data_dir"):
        instantiate(amazon.data.source).files()
    ml100k = compose_config(["data=ml100k", f"data.source.path={tmp_path}"])
    with pytest.raises(DataError, match=r"ml-100k\.inter.*check data\.source\.dataset"):
        instantiate(ml100k.data.source).files()


def test_folder_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        FolderSource(missing).load()
    with pytest.raises(DataError, match="nowhere"):
        FolderSource(missing).files()


def test_folder_without_inter_files(tmp_path):
    with pytest.raises(DataError, match=r"no \*\.inter\.csv"):
        FolderSource(tmp_path).files()


def test_folder_missing_file(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.item.csv").unlink()
    with pytest.raises(DataError, match=r"cds\.item\.csv.*domain 'cds'"):
        FolderSource(root).load()
    with pytest.raises(DataError, match=r"music\.inter\.csv"):
        FolderSource(root, domains=["music"]).files()


def test_folder_missing_column(tmp_path):
    root = write_folder(tmp_path / "d")
    pd.DataFrame({"user": ["u1"], "item_id": ["a"]}).to_csv(root / "cds.inter.csv", index=False)
    with pytest.raises(DataError, match=r"cds\.inter\.csv: missing column 'user_id'"):
        FolderSource(root).load()
    pd.DataFrame({"id": ["a"]}).to_csv(root / "books.item.csv", index=False)
    with pytest.raises(DataError, match=r"books\.item\.csv: missing column 'item_id'"):
        FolderSource(root).load()


@pytest.mark.parametrize("content", ["user_id,item_id,rating\n", ""])
def test_folder_empty_domain_file(tmp_path, content):
    root = write_folder(tmp_path / "d")
    (root / "cds.inter.csv").write_text(content)
    with pytest.raises(DataError, match=r"cds\.inter\.csv: the file has no rows"):
        FolderSource(root).load()


def test_folder_non_numeric_rating(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.inter.csv").write_text("user_id,item_id,rating\nu2,B01,4\nu3,0002,five\n")
    with pytest.raises(DataError, match=r"cds\.inter\.csv: column 'rating'.*'five'"):
        FolderSource(root).load()


def test_folder_empty_timestamps_name_file_column_and_rows(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.inter.csv").write_text(
        "user_id,item_id,timestamp\nu2,B01,5\nu3,0002,\nu2,0002,7\nu4,B01,\nu5,B01,9\n"
    )
    with pytest.raises(
        DataError,
        match=r"cds\.inter\.csv: column 'timestamp' is empty in 2 of 5 rows \(data rows 2, 4\); "
        "fill them or remove the column",
    ):
        FolderSource(root).load()


def test_folder_parquet_empty_timestamps(tmp_path):
    root = write_folder(tmp_path / "d", "parquet")
    frame = pd.read_parquet(root / "books.inter.parquet")
    frame["timestamp"] = [10.0, None, 30.0]
    frame.to_parquet(root / "books.inter.parquet", index=False)
    with pytest.raises(
        DataError, match=r"books\.inter\.parquet: column 'timestamp' is empty in 1 of 3"
    ):
        FolderSource(root).load()


def test_folder_timestamp_in_some_domains_only(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.inter.csv").write_text("user_id,item_id\nu2,B01\nu3,0002\n")
    with pytest.raises(DataError, match=r"cds\.inter\.csv has no 'timestamp' column but .*books"):
        FolderSource(root).load()


def test_folder_duplicate_item_row(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.item.csv").write_text("item_id,title\nB01,A\n0002,B\nB01,C\n")
    with pytest.raises(DataError, match=r"cds\.item\.csv: item_id 'B01' has more than one row"):
        FolderSource(root).load()


def test_folder_item_rows_without_interactions_are_read(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.item.csv").write_text("item_id,title\nB01,A\n0002,B\nB77,Unrated\n")
    items = FolderSource(root).load().items
    assert items.loc[items["domain"] == "cds", "item"].tolist() == ["B01", "0002", "B77"]


def test_folder_empty_id(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.inter.csv").write_text("user_id,item_id\nu2,B01\n,0002\n")
    with pytest.raises(DataError, match=r"cds\.inter\.csv: column 'user_id' has 1 empty"):
        FolderSource(root).load()


def test_folder_missing_item_row_is_left_to_preprocess(tmp_path):
    root = write_folder(tmp_path / "d")
    (root / "cds.inter.csv").write_text("user_id,item_id,timestamp\nu2,B01,1\nu3,B99,2\n")
    tables = FolderSource(root).load()
    with pytest.raises(DataError, match="'B99' in domain 'cds'.*on_missing_item=drop"):
        preprocess(tables)


# ------------------------------------------------------- SequenceFoodKitchenSource


def write_sequences(root: Path) -> Path:
    root.mkdir()
    (root / "num.txt").write_text("2\n3\n")
    (root / "items_A.tsv").write_text(
        "local_idx\tglobal_idx_in_sequences\tasin\ttitle\n0\t0\t0000000001\tTea\n1\t1\tA2\tRice\n"
    )
    (root / "items_B.tsv").write_text(
        "local_idx\tglobal_idx_in_sequences\tasin\ttitle\n"
        '0\t2\tB0\tPan "large"\n1\t3\tB1\tPot\n2\t4\tB2\tKnife\n'
    )
    (root / "train_A.txt").write_text("1\t0,1\n2\t1\n")
    (root / "train_B.txt").write_text("1\t2,3,4\n")
    (root / "train_overlap.txt").write_text("1\t0,2,1\n")
    (root / "valid.txt").write_text("1\t3,0\n")
    (root / "test.txt").write_text("1\t4,1\n")
    return root


def test_sequences_small(tmp_path):
    tables = SequenceFoodKitchenSource(write_sequences(tmp_path / "fk")).load()
    assert_ids_are_str(tables)
    inter = tables.interactions
    assert inter["user"].nunique() == 6  # user 1 of each file is a different user
    first = inter[inter["user"] == "train_overlap:1"]
    assert first["item"].tolist() == ["0000000001", "B0", "A2"]
    assert first["domain"].tolist() == ["food", "kitchen", "food"]
    assert first["timestamp"].tolist() == [0.0, 1.0, 2.0]
    assert tables.items["title"].tolist()[2] == 'Pan "large"'
    assert len(SequenceFoodKitchenSource(tmp_path / "fk").files()) == 8


def test_sequences_errors(tmp_path):
    root = write_sequences(tmp_path / "fk")
    (root / "test.txt").write_text("1\t4,x\n")
    with pytest.raises(DataError, match=r"test\.txt: item 'x'"):
        SequenceFoodKitchenSource(root).load()
    (root / "test.txt").write_text("1\t4,9\n")
    with pytest.raises(DataError, match="'index:9'"):
        preprocess(SequenceFoodKitchenSource(root).load())
    (root / "valid.txt").unlink()
    with pytest.raises(DataError, match=r"valid\.txt"):
        SequenceFoodKitchenSource(root).files()
    with pytest.raises(ValueError, match="domain_names"):
        SequenceFoodKitchenSource(root, domain_names=("a",))


# ----------------------------------------------------------------- LightGCNSource


def test_lightgcn_small(tmp_path):
    (tmp_path / "train.txt").write_text("0 0 1 2\n1\n2 10 2\n")
    (tmp_path / "test.txt").write_text("0 3\n2 1\n")
    tables = LightGCNSource(tmp_path, domain="checkins").load()
    assert_ids_are_str(tables)
    inter = tables.interactions
    assert inter["split"].tolist() == ["train"] * 5 + ["test"] * 2
    assert inter["user"].tolist() == ["0", "0", "0", "2", "2", "0", "2"]
    assert tables.items.columns.tolist() == ["item", "domain"]
    assert sorted(tables.items["item"]) == ["0", "1", "10", "2", "3"]
    (tmp_path / "test.txt").unlink()
    with pytest.raises(DataError, match=r"test\.txt"):
        LightGCNSource(tmp_path).load()


# ------------------------------------------------------------------- AtomicSource


def test_atomic_small_without_item_file(tmp_path):
    (tmp_path / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\tlabel:token\n1\t01\t4\tx\n2\t01\t3\ty\n"
    )
    tables = AtomicSource(tmp_path, "toy").load()
    assert_ids_are_str(tables)
    assert tables.interactions.columns.tolist() == ["user", "item", "domain", "rating"]
    assert tables.interactions["domain"].unique().tolist() == ["toy"]
    assert tables.items.to_dict("list") == {"item": ["01"], "domain": ["toy"]}
    assert tables.users is None and tables.kg is None and tables.item_entity is None


def test_atomic_empty_timestamps(tmp_path):
    (tmp_path / "toy.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n1\t01\t4\n2\t01\t\n"
    )
    with pytest.raises(
        DataError, match=r"toy\.inter: column 'timestamp' is empty in 1 of 2 rows \(data rows 2\)"
    ):
        AtomicSource(tmp_path, "toy").load()


def test_atomic_errors(tmp_path):
    (tmp_path / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t2\tgood\n")
    with pytest.raises(DataError, match=r"toy\.inter: column 'rating'.*'good'"):
        AtomicSource(tmp_path, "toy").load()
    (tmp_path / "toy.inter").write_text("uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"toy\.inter: missing column 'user_id'"):
        AtomicSource(tmp_path, "toy").load()
    (tmp_path / "toy.inter").write_text("user_id:tok\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"toy\.inter: header field 'user_id:tok'"):
        AtomicSource(tmp_path, "toy").load()
    with pytest.raises(DataError, match=r"other\.inter"):
        AtomicSource(tmp_path, "other").files()


# --------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def amazon(data_root):
    return FolderSource(data_root / "amazon-books-cds-movies").load()


def test_real_amazon_books_cds_movies(amazon):
    assert_ids_are_str(amazon)
    inter = amazon.interactions
    stats = inter.groupby("domain").agg(
        n=("user", "size"), users=("user", "nunique"), items=("item", "nunique")
    )
    assert stats.to_dict("index") == {
        "books": {"n": 54_292, "users": 5_365, "items": 40_075},
        "cds": {"n": 55_737, "users": 6_875, "items": 28_205},
        "movies": {"n": 53_339, "users": 6_307, "items": 18_143},
    }
    users = {d: set(g) for d, g in inter.groupby("domain")["user"]}
    assert len(users["books"] & users["cds"]) == 3_852
    assert len(users["books"] & users["movies"]) == 3_692
    assert len(users["cds"] & users["movies"]) == 4_412
    assert len(users["books"] & users["cds"] & users["movies"]) == 2_742
    assert "0001473123" in set(amazon.items["item"])
    assert amazon.items["title"].notna().all()
    # Empty brand cells in the files (SOURCE.txt's 99 / 761 / 4,212 counts something else).
    missing_brand = amazon.items["brand"].isna().groupby(amazon.items["domain"]).sum()
    assert missing_brand.to_dict() == {"books": 79, "cds": 400, "movies": 1_898}


def test_real_amazon_catalogue_is_every_item_row(data_root, amazon):
    """Items without interactions stay items; counted here straight from the files."""
    data = preprocess(amazon)
    root = data_root / "amazon-books-cds-movies"
    for domain in ("books", "cds", "movies"):
        rows = pd.read_csv(root / f"{domain}.item.csv", dtype=str, keep_default_na=False)
        used = pd.read_csv(root / f"{domain}.inter.csv", dtype=str, keep_default_na=False)
        unused = set(rows["item_id"]) - set(used["item_id"])
        meta = data.meta["domains"][domain]
        assert meta["items"] == len(rows) == int((data.items["domain"] == domain).sum())
        assert meta["items_without_interactions"] == len(unused)
    assert data.meta["num_items"] == data.num_items == 40_075 + 28_205 + 18_143


def test_real_food_kitchen(data_root):
    tables = SequenceFoodKitchenSource(data_root / "amazon-food-kitchen").load()
    assert_ids_are_str(tables)
    inter = tables.interactions
    file_of = inter["user"].str.split(":").str[0]
    assert inter.groupby(file_of)["user"].nunique().to_dict() == {
        "train_A": 5_472,
        "train_B": 38_191,
        "train_overlap": 7_501,
        "valid": 960,
        "test": 937,
    }
    rows = inter.groupby([file_of, inter["domain"]]).size().to_dict()
    assert rows[("train_A", "food")] == 37_281 and ("train_A", "kitchen") not in rows
    assert rows[("train_B", "kitchen")] == 265_817 and ("train_B", "food") not in rows
    assert rows[("train_overlap", "food")] == 45_849
    assert rows[("train_overlap", "kitchen")] == 53_321
    assert tables.items.groupby("domain").size().to_dict() == {"food": 8_661, "kitchen": 27_637}
    assert tables.items["title"].notna().all()
    first = inter[inter["user"] == "train_A:1"]
    assert first["timestamp"].tolist() == list(range(13))
    assert first["item"].iloc[0] == "B000BIZT3E"


def test_real_gowalla(data_root):
    tables = LightGCNSource(data_root / "gowalla-lightgcn").load()
    inter = tables.interactions
    assert inter["split"].value_counts().to_dict() == {"train": 810_128, "test": 217_242}
    assert inter["user"].nunique() == 29_858
    assert len(tables.items) == 40_981
    assert tables.domains == ["gowalla"]
    assert tables.items.columns.tolist() == ["item", "domain"]


def test_real_ml100k(data_root):
    tables = AtomicSource(data_root / "ml-100k-kg" / "ml-100k_recbole", "ml-100k").load()
    assert_ids_are_str(tables)
    inter = tables.interactions
    assert len(inter) == 100_000
    assert inter["user"].nunique() == 943 and inter["item"].nunique() == 1_682
    assert inter["rating"].between(1, 5).all()
    assert len(tables.items) == 1_682 and len(tables.users) == 943
    assert tables.users.columns.tolist() == ["user", "age", "gender", "occupation", "zip_code"]
    toy_story = tables.items[tables.items["item"] == "1"].iloc[0]
    assert toy_story["movie_title"] == "Toy Story"
    assert toy_story["class"] == "Animation Children's Comedy"
    assert len(tables.kg) == 91_631 and tables.kg.columns.tolist() == ["head", "relation", "tail"]
    assert len(tables.item_entity) == 1_598
    assert tables.item_entity["item"].nunique() == 1_598

"""The worked example of docs/data.md (adding a format) runs as written."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from gnnrec.data import DataError, Source, cache_key, code_files, preprocess

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


@pytest.fixture
def movielens(tmp_path, monkeypatch):
    text = DOC.read_text()
    (tmp_path / "movielens.py").write_text(re.findall(r"```python\n(.*?)```", text, re.S)[0])
    spec = importlib.util.spec_from_file_location("movielens", tmp_path / "movielens.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "movielens", module)
    spec.loader.exec_module(module)
    root = tmp_path / "ml-1m"
    root.mkdir()
    (root / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::9\n")
    (root / "movies.dat").write_text(
        "10::Toy Story (1995)::Animation\n20::Jumanji (1995)::Adventure\n40::Unrated::Drama\n"
    )
    return module.MovieLensSource, root, text


def test_example_format_loads_with_the_catalogue(movielens):
    cls, root, _ = movielens
    source = cls(root)
    assert isinstance(source, Source)
    data = preprocess(source.load())
    assert data.items[["item", "title", "genres"]].values.tolist() == [
        ["10", "Toy Story (1995)", "Animation"],
        ["20", "Jumanji (1995)", "Adventure"],
        ["40", "Unrated", "Drama"],
    ]
    assert data.interactions["timestamp"].tolist() == [978300760.0, 978302109.0, 9.0]
    assert data.meta["domains"]["movies"]["items_without_interactions"] == 1
    assert "movielens.py" in {p.name for p in code_files(source)}
    assert len(cache_key(source)) == 64


def test_example_format_errors_name_the_key(movielens, tmp_path):
    cls, root, _ = movielens
    with pytest.raises(DataError, match=r"set data\.source\.path"):
        cls(tmp_path / "nowhere").files()
    (root / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::\n")
    with pytest.raises(DataError, match=r"ratings\.dat: column 'timestamp' is empty in 1 of 2"):
        cls(root).load()


def test_example_yaml_keys_are_commented_and_match_the_constructor(movielens):
    cls, _, text = movielens
    block = re.findall(r"```yaml\n(.*?)```", text, re.S)[0]
    for line in block.splitlines():
        if ":" in line and not line.lstrip().startswith(("#", "-")) and line.startswith("  "):
            assert "# (" in line, line
    source = yaml.safe_load(block)["source"]
    assert source["_target_"] == "gnnrec.data.MovieLensSource"
    args = {k for k in source if k != "_target_"}
    assert args <= set(cls.__init__.__code__.co_varnames)

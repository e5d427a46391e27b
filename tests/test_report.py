import io
import json

import pytest
from rich.console import Console

from gnnrec.report import collect_runs, markdown_mean_std, mean_std_table, metrics_table


def make_run(folder, overrides, metrics):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_mean_and_std_over_seeds(tmp_path):
    make_run(tmp_path / "0", ["model=mf", "seed=0"], {"test/warm/ndcg@20": 0.1})
    make_run(tmp_path / "1", ["model=mf", "seed=1"], {"test/warm/ndcg@20": 0.3})
    make_run(tmp_path / "2", ["model=pop", "seed=0"], {"test/warm/ndcg@20": 0.05})
    runs = collect_runs([tmp_path])
    assert sorted(runs["seed"]) == ["0", "0", "1"]
    table = mean_std_table(runs, ["test/warm/ndcg@20"])
    assert table.loc["model=mf", "runs"] == 2
    assert table.loc["model=mf", "test/warm/ndcg@20 mean"] == pytest.approx(0.2)
    # sample std of {0.1, 0.3}: sqrt(((0.1)^2 + (0.1)^2) / 1)
    assert table.loc["model=mf", "test/warm/ndcg@20 std"] == pytest.approx(0.02**0.5)
    text = markdown_mean_std(table, ["test/warm/ndcg@20"])
    assert "| model=mf | 2 | 0.2000 ± 0.1414 |" in text


def test_console_table_lists_groups_in_order():
    metrics = {
        "test/all/ndcg@20": 0.3,
        "test/cold/ndcg@20": 0.2,
        "test/warm/ndcg@20": 0.4,
        "test/warm/num_users": 10,
        "test/cold/num_users": 5,
        "test/all/num_users": 15,
        "val/warm/ndcg@20": 0.9,
    }
    buffer = io.StringIO()
    metrics_table(metrics, console=Console(file=buffer, width=120))
    lines = [line for line in buffer.getvalue().splitlines() if "│" in line]
    assert [line.split("│")[1].strip() for line in lines] == ["warm", "cold", "all"]
    assert "0.4000" in lines[0] and "0.9000" not in buffer.getvalue()

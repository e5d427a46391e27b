"""The notebooks run end to end in fast mode, and are committed without outputs.

Each notebook is executed with nbclient (``notebooks/nbtools.py``) after a cell injected
below its ``parameters`` cell sets ``FAST = True`` and ``OUTPUT_DIR``; a failing cell
raises :class:`nbclient.exceptions.CellExecutionError`. The kernel is this
interpreter (``sys.executable``), so no Jupyter kernelspec needs to be installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def _nbtools():
    spec = importlib.util.spec_from_file_location("nbtools", NOTEBOOKS / "nbtools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nbtools = _nbtools()


def _execute(name: str, out: Path) -> nbformat.NotebookNode:
    return nbtools.execute(
        NOTEBOOKS / name,
        {"FAST": True, "OUTPUT_DIR": str(out)},
        output_path=out / name,
        timeout=900,
    )


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.mark.timeout(900)
def test_data_overview_notebook(data_root, tmp_path):
    nb = _execute("01_data_overview.ipynb", tmp_path)
    assert not _errors(nb)
    for name in ("domain_stats", "user_overlap", "connectivity", "text_lengths", "split"):
        assert (tmp_path / f"{name}.csv").is_file(), name
    for name in ("user_overlap", "degree_distribution", "text_lengths", "split"):
        assert (tmp_path / f"{name}_amazon_bcm.png").is_file(), name
    # The closing summary is written by code from the tables.
    summary = "".join(o.get("data", {}).get("text/markdown", "") for o in nb.cells[-1].outputs)
    assert "amazon_bcm" in summary and "cold-start" in summary


@pytest.mark.timeout(900)
def test_ablation_notebook(data_root, tmp_path):
    nb = _execute("02_ablation.ipynb", tmp_path)
    assert not _errors(nb)
    runs = sorted(p.parent for p in (tmp_path / "runs").rglob("metrics.json"))
    variants = {p.parent.name for p in runs}
    assert {"full-model", "no-text-id-lightgcn", "no-cross-domain-edges"} <= variants
    assert len(runs) == 2 * len(variants)  # two seeds each
    for run in runs:
        for name in ("history.json", "per_user.parquet", ".hydra/overrides.yaml"):
            assert (run / name).is_file(), run / name
    report = tmp_path / "report"
    for name in (
        "summary.md",
        "significance.md",
        "significance.csv",
        "bars.png",
        "curves.png",
        "ablation_table.csv",
        "ablation_bars.png",
        "ablation_by_axis.png",
        "ablation_curves.png",
        "reading.md",
    ):
        assert (report / name).is_file(), name
    assert "full model" in (report / "reading.md").read_text()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    problems = nbtools.is_stripped(nb)
    assert not problems, f"{path.name}: {problems}; run `make strip-notebooks`"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), "first code cell must be tagged"


def test_strip_and_inject(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(FAST)"),
        ],
        metadata={"widgets": {"state": {}}},
    )
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="False\n")]
    nb.cells[1].execution_count = 3
    assert len(nbtools.is_stripped(nb)) == 3
    assert nbtools.is_stripped(nbtools.strip(nb)) == []
    nbtools.inject_parameters(nb, {"FAST": True, "OUTPUT_DIR": "/x"})
    assert nb.cells[1].source.endswith("FAST = True\nOUTPUT_DIR = '/x'\n")
    assert nb.cells[1].metadata["tags"] == ["injected-parameters"]
    with pytest.raises(ValueError, match="parameters"):
        nbtools.inject_parameters(nbformat.v4.new_notebook(), {"FAST": True})

"""The notebooks run end to end in fast mode (papermill), and are committed stripped
(nbstripout).

papermill injects ``FAST = True`` and ``OUTPUT_DIR`` after the cell tagged
``parameters``; a failing cell raises :class:`papermill.PapermillExecutionError`. The
kernel is a kernelspec written into a temporary Jupyter data folder for this
interpreter (``sys.executable``), so the test needs no kernel installed and a stale one
elsewhere cannot pick another Python; ``make notebooks`` uses the ``gnnrec-venv``
kernel that ``make install`` registers in the venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "gnnrec-test"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, monkeypatch_module):
    """A kernelspec running this interpreter, found through ``JUPYTER_PATH``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    monkeypatch_module.setenv("JUPYTER_PATH", str(root))
    return KERNEL


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _execute(name: str, out: Path, kernel: str) -> nbformat.NotebookNode:
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(out / name),
        parameters={"FAST": True, "OUTPUT_DIR": str(out)},
        kernel_name=kernel,
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        execution_timeout=900,
    )
    return nbformat.read(out / name, as_version=4)


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.mark.timeout(900)
def test_data_overview_notebook(data_root, tmp_path, kernel):
    nb = _execute("01_data_overview.ipynb", tmp_path, kernel)
    assert not _errors(nb)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "FAST = True" in injected[0].source
    for name in ("domain_stats", "user_overlap", "connectivity", "text_lengths", "split"):
        assert (tmp_path / f"{name}.csv").is_file(), name
    for name in ("user_overlap", "degree_distribution", "text_lengths", "split"):
        assert (tmp_path / f"{name}_amazon_bcm.png").is_file(), name
    summary = "".join(o.get("data", {}).get("text/markdown", "") for o in nb.cells[-1].outputs)
    assert "amazon_bcm" in summary and "cold-start" in summary


@pytest.mark.timeout(900)
def test_ablation_notebook(data_root, tmp_path, kernel):
    nb = _execute("02_ablation.ipynb", tmp_path, kernel)
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


def test_committed_notebooks_are_stripped():
    paths = sorted(str(p) for p in NOTEBOOKS.glob("*.ipynb"))
    cli = Path(sys.executable).parent / "nbstripout"
    done = subprocess.run([str(cli), "--verify", *paths], capture_output=True, text=True)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}; run `make strip-notebooks`"
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{path}: tag the first cell"


def test_verify_flags_an_executed_notebook(tmp_path):
    """The strip check fails on a notebook with outputs (the check itself can fail)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].execution_count = 1
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    cli = Path(sys.executable).parent / "nbstripout"
    assert subprocess.run([str(cli), "--verify", str(path)], capture_output=True).returncode != 0
    subprocess.run([str(cli), str(path)], check=True)
    assert subprocess.run([str(cli), "--verify", str(path)], capture_output=True).returncode == 0
    assert nbformat.read(path, as_version=4).cells[0].outputs == []

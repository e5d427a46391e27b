"""Execute the notebooks with parameters, or strip their outputs before a commit.

    python notebooks/nbtools.py run --fast --out outputs/notebooks notebooks/*.ipynb
    python notebooks/nbtools.py strip notebooks/*.ipynb
    python notebooks/nbtools.py check notebooks/*.ipynb   # exit status 1 if one has outputs

``run`` injects a cell after the cell tagged ``parameters`` (the papermill convention)
that sets ``FAST`` and ``OUTPUT_DIR``, executes the notebook with the ``python3`` kernel
of the Python running this script (``sys.executable``, whatever kernelspecs are
installed elsewhere) and writes the executed copy to ``<out>/<name>.ipynb``; the
notebook's tables and figures go to ``<out>/<name>/``. A failing cell stops the run
with :class:`nbclient.exceptions.CellExecutionError`. ``make notebooks`` and
``tests/test_notebooks.py`` use these functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

__all__ = ["execute", "inject_parameters", "is_stripped", "kernel_manager", "strip"]

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
# Notebook metadata an editor adds while running; none of it belongs in the repository.
VOLATILE_METADATA = ("widgets", "execution", "papermill", "varInspector", "toc")


def kernel_manager() -> KernelManager:
    """A ``python3`` kernel running ``sys.executable -m ipykernel_launcher``.

    No kernelspec folder is searched (``kernel_dirs=[]``), so a stale ``python3``
    kernelspec elsewhere (``~/.local/share/jupyter``, or the venv's own one, whose
    ``python`` command resolves through ``PATH``) cannot pick another interpreter;
    jupyter_client falls back to ipykernel's built-in spec for this interpreter.
    """
    specs = KernelSpecManager(kernel_dirs=[])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def inject_parameters(nb: nbformat.NotebookNode, parameters: Mapping[str, Any]) -> None:
    """Insert a cell assigning ``parameters`` after the cell tagged ``parameters``.

    Raises:
        ValueError: The notebook has no cell tagged ``parameters``.
    """
    index = next(
        (
            i
            for i, cell in enumerate(nb.cells)
            if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])
        ),
        None,
    )
    if index is None:
        raise ValueError(
            "the notebook has no cell tagged 'parameters'; tag the first code cell "
            "(cell metadata: {'tags': ['parameters']})"
        )
    source = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(index + 1, cell)


def execute(
    path: str | Path,
    parameters: Mapping[str, Any] | None = None,
    output_path: str | Path | None = None,
    timeout: int = 1800,
) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` (working directory: its folder) and return it.

    Args:
        path: The ``.ipynb`` file.
        parameters: Values assigned in a cell injected after the ``parameters`` cell.
        output_path: Where to write the executed notebook (also written when a cell
            fails, with the error in its outputs); ``None`` writes nothing.
        timeout: Seconds one cell may run.

    Raises:
        nbclient.exceptions.CellExecutionError: A cell raised.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if parameters:
        inject_parameters(nb, parameters)
    client = NotebookClient(
        nb,
        km=kernel_manager(),
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    try:
        client.execute()
    finally:
        if output_path is not None:
            Path(output_path).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, output_path)
    return nb


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts and editor metadata, in place; return ``nb``."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in VOLATILE_METADATA:
            cell.metadata.pop(key, None)
    for key in VOLATILE_METADATA:
        nb.metadata.pop(key, None)
    return nb


def is_stripped(nb: nbformat.NotebookNode) -> list[str]:
    """What :func:`strip` would remove, one line per cell or key; empty when stripped."""
    problems = [f"notebook metadata {k!r}" for k in VOLATILE_METADATA if k in nb.metadata]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            problems.append(f"cell {i}: outputs")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            problems.append(f"cell {i}: execution_count {cell.execution_count}")
        problems += [f"cell {i}: metadata {k!r}" for k in VOLATILE_METADATA if k in cell.metadata]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks into --out")
    run.add_argument("notebooks", nargs="+", type=Path)
    run.add_argument("--fast", action="store_true", help="FAST = True (the test mode)")
    run.add_argument("--out", type=Path, default=Path("outputs/notebooks"))
    for name in ("strip", "check"):
        sub.add_parser(name, help=f"{name} outputs").add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    status = 0
    for path in args.notebooks:
        if args.command == "run":
            out = args.out.resolve()
            params = {"FAST": args.fast, "OUTPUT_DIR": str(out / path.stem)}
            start = time.perf_counter()
            execute(path, params, out / path.name)
            print(f"{path}: executed in {time.perf_counter() - start:.0f} s -> {out / path.name}")
        elif args.command == "strip":
            nbformat.write(strip(nbformat.read(path, as_version=4)), path)
        else:
            problems = is_stripped(nbformat.read(path, as_version=4))
            for problem in problems:
                print(f"{path}: {problem}")
            status = status or int(bool(problems))
    return status


if __name__ == "__main__":
    sys.exit(main())

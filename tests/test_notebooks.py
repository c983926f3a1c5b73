"""The notebooks are committed without outputs and execute headless (nbclient).

The kernel is this interpreter: a kernelspec written into a temporary
JUPYTER_PATH runs ``sys.executable -m ipykernel_launcher``, so the notebooks
see the same virtual environment as the tests (a ``python3`` kernelspec found
elsewhere on the machine could point at another Python).
"""

from __future__ import annotations

import json
import pathlib
import sys

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "arbitrary-style-test"


def test_the_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"interpolation.ipynb", "embedding_space.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "arbitrary-style tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # ipykernel's default inline backend: headless, figures become PNG outputs.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return KERNEL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, kernel, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    # A last cell reports the kernel's interpreter, to check it is ours.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},  # the working directory
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    assert printed.strip() == sys.executable
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    images = sum(1 for o in outputs if "image/png" in o.get("data", {}))
    assert images >= 3, f"{path.name} drew {images} figures"

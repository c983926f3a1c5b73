"""The notebooks are committed with their outputs, and still execute headless (nbclient).

Each notebook runs once, on a copy in memory (the committed file is never
written; ``make notebooks`` refreshes it), through
``experiments.notebooks.execute``, whose kernel is this interpreter (a
``python3`` kernelspec found elsewhere on the machine could point at another
Python). The run then tells which cells produce output, and the committed file
must carry output for each of them, so a notebook committed without its
outputs, or with some cells left unexecuted, fails here.
"""

from __future__ import annotations

import builtins
import hashlib
import sys

import nbformat
import pytest

from experiments import notebooks

NOTEBOOKS = notebooks.notebook_paths()
# Kept small in the repository: figures at 72 dpi (about 1.3 MB for the larger
# notebook today); a figure saved at a high dpi would pass this.
MAX_NOTEBOOK_BYTES = 2_000_000


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def images(cell) -> int:
    return sum(1 for output in cell.outputs if "image/png" in output.get("data", {}))


def test_the_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"interpolation.ipynb", "embedding_space.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    cells = code_cells(notebook)
    # Executed top to bottom in one fresh kernel, as `make notebooks` does: not
    # cells run by hand in another order, nor a notebook with unexecuted cells.
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts {counts}; run `make notebooks` and commit the result"
    )
    errors = [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is committed with an error output: {errors[0].get('ename')}"
    assert sum(images(cell) for cell in cells) >= 1, f"{path.name} is committed without a figure"
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size} bytes"


@pytest.fixture
def kernel():
    with notebooks.this_interpreter_kernel() as name:
        yield name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_like_the_committed_one(path, kernel, tmp_path):
    committed_bytes = path.read_bytes()
    committed = nbformat.reads(committed_bytes.decode(), as_version=4)
    scratch = nbformat.reads(committed_bytes.decode(), as_version=4)
    # A last cell reports the kernel's interpreter, to check it is ours.
    scratch.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))

    notebooks.execute(scratch, kernel, tmp_path)  # raises CellExecutionError with the failing cell

    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(committed_bytes).digest()
    printed = "".join(o.get("text", "") for o in scratch.cells[-1].outputs)
    assert printed.strip() == sys.executable
    ran = code_cells(scratch)[:-1]
    assert sum(images(cell) for cell in ran) >= 3, f"{path.name} drew too few figures"
    for number, (fresh, kept) in enumerate(zip(ran, code_cells(committed), strict=True), start=1):
        where = f"{path.name}, code cell {number} ({fresh.source.splitlines()[0]!r})"
        if fresh.outputs:
            assert kept.outputs, f"{where}: committed without its output; run `make notebooks`"
        if images(fresh):
            assert images(kept) == images(fresh), (
                f"{where}: draws {images(fresh)} figures, {images(kept)} committed; run `make notebooks`"
            )


def test_tsne_cell_without_scikit_learn_prints_how_to_install(monkeypatch, capsys):
    notebook = nbformat.read(notebooks.NOTEBOOK_DIR / "embedding_space.ipynb", as_version=4)
    (cell,) = [cell for cell in code_cells(notebook) if "TSNE" in cell.source]
    # A None entry makes the import raise ImportError; submodules already
    # imported by another test are found in sys.modules first, so they go too.
    for name in ["sklearn", *(name for name in sys.modules if name.startswith("sklearn."))]:
        monkeypatch.setitem(sys.modules, name, None)
    # Only the names the missing-package branch may use: it must not draw.
    exec(cell.source, {"__builtins__": builtins})
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("t-SNE skipped: scikit-learn is not installed"), printed
    assert "pip install" in printed and "[notebook]" in printed, printed

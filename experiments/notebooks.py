r"""Execute the notebooks under ``notebooks/`` and write them back with their outputs.

    make notebooks        # or: .venv/bin/python -m experiments.notebooks

The notebooks are committed executed, so their figures show when the
repository is browsed; this refreshes them after a change to a notebook or to
the code it calls (both take about 25 s together on two shared CPU cores). ``tests/test_notebooks.py``
executes the same notebooks through ``execute`` on a copy in memory, and checks
that the committed files carry outputs.

The kernel is this interpreter: a kernelspec written into a temporary
``JUPYTER_PATH`` runs ``sys.executable -m ipykernel_launcher``, so the notebooks
see the same virtual environment as the caller (a ``python3`` kernelspec found
elsewhere on the machine, in ``~/.local/share/jupyter`` say, could point at
another Python). The figures are ipykernel's inline PNGs.

What changes from one run to the next is kept out of the files, so that
re-running on unchanged code rewrites them identically on the same machine:
no per-cell timings (``record_timing=False``), and the notebook's metadata
(kernelspec, language) is the committed one, not the executing kernel's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Iterator, Sequence

import nbformat
from absl import flags
from nbclient import NotebookClient

from experiments import script

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL = "arbitrary-style-this-python"
# Per cell; both notebooks together take about 25 s on two shared CPU cores,
# so this only stops a cell that hangs.
CELL_TIMEOUT_S = 600


def notebook_paths() -> list[pathlib.Path]:
    """The project's notebooks, sorted by name."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def write_kernel_spec(jupyter_path: pathlib.Path) -> str:
    """Writes a kernelspec running this interpreter under ``jupyter_path``; returns its name.

    The caller puts ``jupyter_path`` on ``JUPYTER_PATH`` for the spec to be found.
    """
    spec_dir = jupyter_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "arbitrary-style (this interpreter)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KERNEL


@contextlib.contextmanager
def this_interpreter_kernel() -> Iterator[str]:
    """A kernel name that runs this interpreter, for the duration of the block."""
    saved = {name: os.environ.get(name) for name in ("JUPYTER_PATH", "MPLBACKEND")}
    with tempfile.TemporaryDirectory() as directory:
        name = write_kernel_spec(pathlib.Path(directory))
        os.environ["JUPYTER_PATH"] = directory
        # ipykernel's inline backend draws the figures as PNG outputs; an
        # MPLBACKEND from the caller's shell (Agg, say) would show nothing.
        os.environ.pop("MPLBACKEND", None)
        try:
            yield name
        finally:
            for variable, value in saved.items():
                if value is None:
                    os.environ.pop(variable, None)
                else:
                    os.environ[variable] = value


def execute(notebook: nbformat.NotebookNode, kernel_name: str, working_dir: pathlib.Path) -> None:
    """Runs every cell of ``notebook`` in place, from a clean kernel started in ``working_dir``.

    Raises:
      nbclient.exceptions.CellExecutionError: a cell failed; the message has its traceback.
    """
    metadata = copy.deepcopy(notebook.metadata)
    for cell in notebook.cells:
        if cell.cell_type == "code":  # nothing of a previous run survives a failed one
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT_S,
        record_timing=False,
        resources={"metadata": {"path": str(working_dir)}},
    )
    client.execute()
    notebook.metadata = metadata


def define_flags(flag_values: flags.FlagValues) -> None:
    del flag_values  # no options: every notebook is executed


def main(argv: Sequence[str]) -> list[pathlib.Path]:
    """The script in this process; ``argv``: the arguments after the program name."""
    return execute_all(*script.parse_flags(["notebooks", *argv], define_flags))


def execute_all(args: flags.FlagValues, words: Sequence[str]) -> list[pathlib.Path]:
    """Executes every notebook and writes it back in place; returns their paths."""
    del args, words
    paths = notebook_paths()
    with this_interpreter_kernel() as kernel_name:
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            # The working directory is the notebook's own folder, as in Jupyter.
            execute(notebook, kernel_name, path.parent)
            nbformat.validate(notebook)
            nbformat.write(notebook, path)
            print(f"{path.relative_to(ROOT)}: executed, {path.stat().st_size / 1e6:.2f} MB")
    return paths


if __name__ == "__main__":
    script.run_as_script(execute_all, define_flags)

"""Write the companion notebooks from the cells in ``notebooks/_cells.py`` and execute them.

    python notebooks/build.py            # write every notebook and run it, outputs saved
    python notebooks/build.py 03 06      # only those whose names start with 03 or 06

The notebooks are committed with their outputs (so they read on a code host without running);
tests/test_notebooks.py runs each with nbclient (Jupyter's executor, a real IPython kernel) and
checks that the committed outputs equal a fresh run's, after :func:`normalise` has replaced
what changes from run to run (timings, images/s, memory addresses, PNG bytes).
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VOLATILE = "nondeterministic"     # a cell tag: outputs depend on the machine (training runs)


def notebook(cells: list[tuple[str, str, list[str]]]) -> nbformat.NotebookNode:
    """``(kind, source, tags)`` cells -> a notebook for the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.update({
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    for number, (kind, source, tags) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = make(source.strip("\n"))
        cell.id = f"cell-{number:02d}"              # stable ids: rebuilding changes no ids
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nbformat.validator.normalize(nb)
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell top to bottom in a fresh IPython kernel of this Python; raises
    ``nbclient.exceptions.CellExecutionError`` on the first cell that fails.

    The kernel runs in ``notebooks/`` with this checkout first on ``PYTHONPATH`` (so it imports
    the cnnlab beside the notebooks) and matplotlib's inline backend.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as specs:
        # a kernel spec for exactly this interpreter, so no installed spec is needed
        spec = Path(specs) / "cnnlab-python"
        spec.mkdir()
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3", "language": "python"}))
        manager = KernelManager(kernel_name="cnnlab-python",
                                kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs]))
        client = NotebookClient(nb, km=manager, timeout=timeout,
                                resources={"metadata": {"path": str(HERE)}})
        client.execute(env=env)
    return nb


_VOLATILE_TEXT = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x…"),                        # memory addresses
    (re.compile(r"[\d,]+(\.\d+)? img/s"), "… img/s"),
    (re.compile(r"\b\d+(\.\d+)? s\b"), "… s"),                         # seconds
    (re.compile(r"\d+:\d\d<\d+:\d\d"), "…<…"),                         # elapsed<remaining
    (re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+"), "data:image/png;base64,…"),
    # gradcheck's worst entry at float64 rounding: which entry and how small depend on the
    # CPU's summation order (AMD with AVX2: 1.95e-09 at input 1, index (0, 1, 0, 1); Intel
    # with AVX-512: 2.39e-09 at (2, 0, 2, 2)); the verdict before it is compared.
    (re.compile(r"worst \|analytic - numeric\| = \S+ at input \d+, index \([\d, ]*\) "
                r"\(analytic \S+, numeric \S+\)"), "worst |analytic - numeric| = …"),
]


def _text(value) -> str:
    text = "".join(value) if isinstance(value, list) else str(value)
    for pattern, replacement in _VOLATILE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def normalise(nb: nbformat.NotebookNode) -> list[dict]:
    """What a reader sees of each code cell, minus what changes from run to run.

    Per code cell: its source and its outputs (stream text, the text/plain, text/html and
    text/markdown of results and displays, errors); PNG images count but their bytes do not.
    A cell tagged ``nondeterministic`` (training) keeps only the kinds of its outputs.
    """
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            kind = out["output_type"]
            if VOLATILE in cell.metadata.get("tags", []):
                outputs.append({"type": kind})
            elif kind == "stream":
                outputs.append({"type": kind, "name": out["name"], "text": _text(out["text"])})
            elif kind == "error":
                outputs.append({"type": kind, "ename": out["ename"]})
            else:
                data = out.get("data", {})
                shown = {m: _text(data[m]) for m in ("text/plain", "text/html", "text/markdown")
                         if m in data}
                if "image/png" in data:
                    shown["image/png"] = "…"
                outputs.append({"type": kind, **shown})
        # consecutive stream outputs of one name are one text, however they were chunked
        merged: list[dict] = []
        for out in outputs:
            if (merged and out["type"] == "stream" and merged[-1]["type"] == "stream"
                    and merged[-1].get("name") == out.get("name") and "text" in out):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        cells.append({"source": cell.source, "outputs": merged})
    return cells


def build(names: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    from _cells import NOTEBOOKS

    for name, cells in NOTEBOOKS.items():
        if names and not any(name.startswith(n) for n in names):
            continue
        path = HERE / f"{name}.ipynb"
        nb = execute(notebook(cells))
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.validator.normalize(nb)
        path.write_text(nbformat.writes(nb) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    build(sys.argv[1:])

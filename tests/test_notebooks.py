"""The companion notebooks: built from notebooks/_cells.py, committed with outputs, and run.

The slow tests execute every notebook top to bottom with nbclient (Jupyter's own executor and a
real IPython kernel): any error fails, and so does any of the notebooks' own ``assert``s of the
lectures' numbers. Then the committed outputs must equal the fresh run's (after
``build.normalise`` drops what changes between runs), so the notebooks never go stale:
rebuild them with ``python notebooks/build.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TOPICS = ["01_convolution_by_hand", "02_output_sizes", "03_volumes_and_parameters",
          "04_pooling_relu_softmax", "05_backpropagation", "06_training_lenet5",
          "07_image_filters", "08_receptive_fields"]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"_notebooks_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed(name: str) -> dict:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_one_notebook_per_topic_in_the_lectures_order():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == TOPICS
    assert list(_module("_cells").NOTEBOOKS) == TOPICS


@pytest.mark.parametrize("name", TOPICS)
def test_committed_notebook_is_built_from_its_cells_and_executed(name):
    nb = _committed(name)
    cells = _module("_cells").NOTEBOOKS[name]
    assert [_source(c) for c in nb["cells"]] == [source.strip("\n") for _, source, _ in cells], \
        "notebooks/_cells.py changed: rebuild with python notebooks/build.py"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code), "committed without running"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", TOPICS)
def test_notebook_checks_its_numbers_ends_with_exercises_and_reads_no_test_data(name):
    nb = _committed(name)
    sources = [_source(c) for c in nb["cells"]]
    code = "\n".join(s for c, s in zip(nb["cells"], sources) if c["cell_type"] == "code")
    assert code.count("assert ") >= 3
    exercises = [i for i, s in enumerate(sources) if s.startswith("## Exercises")]
    assert exercises and exercises[-1] >= len(sources) - 2
    assert "check" in sources[exercises[-1]].lower()     # the one-line way to check an answer
    for forbidden in ("tests/", "lecture_examples", "shared/", "LECTURE_EXAMPLES"):
        assert forbidden not in "\n".join(sources)


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("name", TOPICS)
def test_notebook_runs_and_its_committed_outputs_are_current(name):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nbformat = pytest.importorskip("nbformat")
    build = _module("build")
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    fresh = build.execute(committed)              # raises CellExecutionError on any failure
    old, new = build.normalise(committed), build.normalise(fresh)
    assert len(old) == len(new)
    for number, (a, b) in enumerate(zip(old, new)):
        assert a == b, (f"{name}: code cell {number} shows something else when run now; "
                        f"rebuild with python notebooks/build.py {name[:2]}")

"""The example notebooks in ``examples/`` run, so they never rot.

Every cell of every notebook is executed at a small budget: each notebook's first code cell
(tagged ``parameters``) holds the budgets and is replaced here, as papermill would. The stored
notebooks (with the outputs of a full-budget run, shown by the documentation site) must hold the
cells that ``examples/build_notebooks.py`` writes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Two updates of PPO (8 envs × 32 steps) and one of the custom agent (8 × 64): each notebook's
# compilation is the test, and every live-plot redraw, checkpoint and update more adds time.
SMALL = {
    "quickstart": {"TOTAL_TIMESTEPS": 512, "SEEDS": 2},
    "sweep": {"TOTAL_TIMESTEPS": 512, "SEEDS": 2},
    "offline": {"DATASET_STEPS": 600, "GRADIENT_STEPS": 40},
    "custom_agent": {"TOTAL_TIMESTEPS": 512, "SEEDS": 2},
}


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  EXAMPLES / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_has_a_small_budget_and_matches_its_builder():
    builder = _builder()
    assert set(builder.NOTEBOOKS) == set(SMALL)
    for name, cells in builder.NOTEBOOKS.items():
        stored = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
        assert [cell.source for cell in stored.cells] == [text for _, text in cells], (
            f"examples/{name}.ipynb differs from examples/build_notebooks.py: run "
            "`python examples/build_notebooks.py --execute`")
        parameters = [c for c in stored.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(parameters) == 1
        names = {line.split("=")[0].strip() for line in parameters[0].source.splitlines()}
        assert names == set(SMALL[name]), f"{name}: SMALL must set every budget of the notebook"
        code = [c for c in stored.cells if c.cell_type == "code"]
        assert all(c.get("outputs") is not None for c in code)
        assert any(c.outputs for c in code), f"{name}: store the outputs of a full-budget run"


@pytest.fixture(scope="module")
def executed() -> dict[str, list[nbformat.NotebookNode]]:
    """Each notebook's executed cells, by name. The notebooks run in turn in ONE kernel, each
    after ``%reset -f`` (an empty namespace: a notebook still runs from its own imports and names
    alone), so the kernel's start, the imports and the XLA backend are paid once, not four times;
    ``allow_errors`` runs every notebook even where an earlier one fails, each test reads its own.
    """
    builder = _builder()
    cells, ranges = [], {}
    for name in sorted(SMALL):
        notebook = builder.read(EXAMPLES / f"{name}.ipynb", SMALL[name])
        start = len(cells)
        cells += [nbformat.v4.new_code_cell("%reset -f"), *notebook.cells]
        ranges[name] = (start, len(cells))
    combined = nbformat.v4.new_notebook(cells=cells, metadata=notebook.metadata)
    NotebookClient(combined, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    return {name: combined.cells[start:stop] for name, (start, stop) in ranges.items()}


@pytest.mark.slow  # one kernel for all, compiling a few small programs per notebook
@pytest.mark.xdist_group("notebooks")  # the kernel runs on one worker
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_at_a_small_budget(name, executed):
    outputs = [output for cell in executed[name] for output in cell.get("outputs", [])]
    errors = [f"{output.ename}: {output.evalue}" for output in outputs
              if output.output_type == "error"]
    assert not errors
    code = [cell for cell in executed[name] if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "every code cell ran"
    assert any(output.output_type == "stream" for output in outputs), "the notebook printed nothing"

"""The example notebooks run top to bottom on digits and show real figures."""

import shutil
from pathlib import Path

import pytest

WHY = "running the notebooks needs nbformat and nbclient (pip install 'dropoutlab[dev]')"
nbformat = pytest.importorskip("nbformat", reason=WHY)
nbclient = pytest.importorskip("nbclient", reason=WHY)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["digits_dropout_comparison_mlp.ipynb", "digits_dropout_sweep_cnn.ipynb", "your_own_model.ipynb"]
)
def test_example_notebook_runs_and_shows_figures(tmp_path, name):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    folder = tmp_path / "examples" / "notebooks"
    notebook = nbformat.read(folder / name, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "- Based on" in printed  # the findings were printed

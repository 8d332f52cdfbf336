"""Generated documents must match the code they are generated from."""

from conftest import REPO
from hbdk_sim import _core, docgen
from hbdk_sim.march import list_marches


def test_ops_md_is_generated_from_the_op_table():
    text = (REPO / "docs" / "ops.md").read_text(encoding="utf-8")
    assert text == docgen.ops_markdown(), "docs/ops.md is stale: run `make docs`"


def test_passes_md_is_generated_from_the_registry():
    text = (REPO / "docs" / "passes.md").read_text(encoding="utf-8")
    assert text == docgen.passes_markdown(), "docs/passes.md is stale: run `make docs`"


def test_check_mode_reports_stale_docs(tmp_path):
    (tmp_path / "ops.md").write_text("old\n")
    (tmp_path / "passes.md").write_text(docgen.passes_markdown())
    assert docgen.main(["--check", "--docs-dir", str(tmp_path)]) == 1
    assert docgen.main(["--write", "--docs-dir", str(tmp_path)]) == 0
    assert docgen.main(["--check", "--docs-dir", str(tmp_path)]) == 0


def test_marches_md_is_generated_from_the_schema_rules_and_march_files():
    text = (REPO / "docs" / "marches.md").read_text(encoding="utf-8")
    assert text == docgen.marches_markdown(), "docs/marches.md is stale: run `make docs`"
    for rule in _core.constraint_rules():
        assert f"| `{rule['name']}` | {rule['doc']}" in text
    for name in list_marches():
        assert f"### {name}\n" in text


def test_readme_python_examples_run(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    for name in ("model.hbir", "model.onnx", "calib.pt", "tiny.hbm"):
        assert (tmp_path / name).exists()

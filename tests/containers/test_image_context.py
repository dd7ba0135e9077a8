"""The image's build context carries pyproject.toml cut to the tables the build reads: an edit
to the tools' settings (pytest's, ruff's...) must not rebuild the image, nor reinstall its
dependencies. No Docker engine needed."""

from __future__ import annotations

import tomllib

from tests.containers.engine import REPO, image_pyproject

PYPROJECT = (REPO / "pyproject.toml").read_text()


def test_the_context_keeps_every_table_the_image_is_built_from() -> None:
    full, cut = tomllib.loads(PYPROJECT), tomllib.loads(image_pyproject(PYPROJECT))
    assert cut["project"] == full["project"]
    assert cut["build-system"] == full["build-system"]
    assert cut["tool"]["hatch"] == full["tool"]["hatch"]
    assert cut["tool"]["ccfleet"] == full["tool"]["ccfleet"]  # the first stage's CLI version


def test_an_edit_to_the_tools_settings_leaves_the_context_as_it_was() -> None:
    edited = PYPROJECT.replace(
        "[tool.pytest.ini_options]\n", "[tool.pytest.ini_options]\nxfail_strict = true\n"
    )
    assert edited != PYPROJECT
    assert image_pyproject(edited) == image_pyproject(PYPROJECT)
    assert "[tool.pytest" not in image_pyproject(PYPROJECT)

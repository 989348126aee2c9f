"""Basics a user expects (issue 16 items 10, 11): the install path, the name, metrics on stdout."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.test_output import vhc

REPO = Path(__file__).resolve().parents[1]


def test_distribution_is_named_vhc_and_the_package_stays_ccxtkit() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "vhc"  # `pip show vhc`
    assert project["scripts"]["vhc"].startswith("ccxtkit.")
    user_deps = " ".join(project["dependencies"])
    assert "keyrings.alt" not in user_deps and "pytest" not in user_deps
    assert any(d.startswith("keyrings.alt") for d in project["optional-dependencies"]["dev"])


def test_readme_user_install_has_no_dev_extra_and_ci_runs_what_the_readme_says() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    first, tests = blocks[0], blocks[1]
    assert "pip install ." in first and "[dev]" not in first and "vhc demo" in first
    assert "pip install -e '.[dev]'" in tests and "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    user, dev, run = (
        ci.index("pip install -q .\n"),
        ci.index("pip install -q -e '.[dev]'"),
        ci.rindex("pytest"),
    )
    assert user < ci.index("vhc --quiet demo") < dev < run


def test_metrics_show_prints_the_exposition(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert vhc("init", str(home)).code == 0
    run = vhc("--home", str(home), "metrics", "show")
    assert run.code == 0, run.err
    assert "# TYPE vhc_kill_switch_active gauge" in run.out
    assert not re.search(r"^\w+_ms\b", run.out, re.M)  # base units: _seconds
    assert not (home / "metrics").exists()

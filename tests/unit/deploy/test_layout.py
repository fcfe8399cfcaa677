"""The layout the README describes is the layout on disk, and its rules hold."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if (ROOT / line).exists()]


def readme_folder_table() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| path | what |") : text.index("## The two commands")]
    return {path.split("/")[0] for path in re.findall(r"^\| `([^`]+)/` \|", table, re.M)}


def test_the_readme_names_every_top_level_folder() -> None:
    folders = {f.split("/")[0] for f in tracked_files() if "/" in f and not f.startswith(".")}
    missing = sorted(folders - readme_folder_table())
    assert not missing, f"top-level folders missing from the README's folder table: {missing}"


def test_no_import_path_edits() -> None:
    needle = ".".join(("sys", "path"))  # spelt apart so this file does not match itself
    offenders = [
        f
        for f in tracked_files()
        if f.endswith(".py") and needle in (ROOT / f).read_text(encoding="utf-8")
    ]
    assert not offenders, f"import path edits (import the workspace packages): {offenders}"


def test_the_worker_does_not_depend_on_plotting() -> None:
    project = tomllib.loads((ROOT / "agent" / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    assert "matplotlib" not in names


def test_every_workspace_member_is_copied_into_the_image() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()
    for member in root["tool"]["uv"]["workspace"]["members"]:
        assert f"COPY {member}/pyproject.toml" in dockerfile, member


def test_the_image_keeps_every_members_pyproject() -> None:
    """A member whose files are kept out of the image (.dockerignore) keeps its pyproject.toml:
    `uv sync --frozen` reads every member's."""
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for member in root["tool"]["uv"]["workspace"]["members"]:
        if f"{member}/*" in ignored or member in ignored:
            assert f"!{member}/pyproject.toml" in ignored, member

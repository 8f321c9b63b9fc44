"""CITATION.cff parses, names the paper the kit implements, and carries the package's version;
the changelog has a section for that version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import routerwise

REPO = Path(__file__).resolve().parents[1]


def test_citation_file_parses_and_matches_the_package_version():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == version == routerwise.__version__
    assert cff["license"] == "MIT" and cff["authors"]
    paper = [r for r in cff["references"] if "arXiv:2604.10907" in
             [i["value"] for i in r.get("identifiers", [])]]
    assert len(paper) == 1 and paper[0]["title"].startswith("RouterWise")
    assert [a["family-names"] for a in paper[0]["authors"]] == ["Hosseini Kasnavieh", "Leckie",
                                                                 "Toosi"]


def test_changelog_has_the_current_version_and_an_unreleased_section():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## \[([^\]]+)\]", text, flags=re.M)
    assert heads[0] == "Unreleased" and routerwise.__version__ in heads


def test_binder_installs_the_pinned_requirements_and_the_kit():
    req = (REPO / "binder" / "requirements.txt").read_text().split("\n")
    assert "-r ../requirements-lock.txt" in req
    assert (REPO / "binder" / "requirements.txt").parent.joinpath("../requirements-lock.txt").resolve().is_file()
    post = REPO / "binder" / "postBuild"
    assert "pip install" in post.read_text() and post.stat().st_mode & 0o111

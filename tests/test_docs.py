"""The documentation points at files that exist.

Every relative Markdown link ``[text](path)`` and every repository path in
backquotes that names a file or folder of this repository (``arbitrary_style/...``,
``configs/...``, ``experiments/...``, ``tests/...``, ``docs/...``,
``notebooks/...``) must exist, in every tracked ``.md`` file.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
QUOTED_PATH = re.compile(
    r"`((?:arbitrary_style|configs|experiments|tests|docs|notebooks)/[\w./-]*\w/?)`"
)


def markdown_files() -> list[pathlib.Path]:
    names = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in names]


def referenced_paths(path: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    text = path.read_text()
    found = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor
        found.append((target, (path.parent / target.split("#")[0]).resolve()))
    for target in QUOTED_PATH.findall(text):
        found.append((target, ROOT / target))
    return found


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_references_exist(path):
    missing = [target for target, resolved in referenced_paths(path) if not resolved.exists()]
    assert not missing, f"{path.relative_to(ROOT)} refers to paths that do not exist: {missing}"

"""The documentation site: it builds with ``mkdocs build --strict`` (no broken link, page or API
reference), every page and every registered algorithm is in it, and every public function and
class of jaxrl has a docstring (the API reference is generated from them)."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import jaxrl
from jaxrl import registry

ROOT = Path(__file__).resolve().parent.parent


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _mkdocs_config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "api" / "agents" / "index.html").exists()
    quickstart = (tmp_path / "notebooks" / "quickstart" / "index.html").read_text()
    assert "final return" in quickstart, "the quickstart notebook is shown with its outputs"


def test_every_example_notebook_is_in_the_docs():
    examples = {p.name for p in (ROOT / "examples").glob("*.ipynb")}
    linked = {p.name for p in (ROOT / "docs" / "notebooks").glob("*.ipynb")
              if p.resolve() == (ROOT / "examples" / p.name).resolve()}
    assert examples and examples == linked, (
        "link every examples/X.ipynb as docs/notebooks/X.ipynb (a symlink) and add it to the nav")


def test_every_page_is_in_the_navigation():
    pages = set(_nav_pages(_mkdocs_config()["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for pattern in ("*.md", "*.ipynb")
               for p in (ROOT / "docs").rglob(pattern)}
    assert on_disk - pages == set(), "add these pages to mkdocs.yml's nav"
    assert pages - on_disk == set(), "mkdocs.yml's nav names pages that do not exist"


def test_every_algorithm_has_an_api_reference():
    text = (ROOT / "docs" / "api" / "agents.md").read_text()
    missing = [name for name in registry.names()
               if f"::: {registry.get(name).module}\n" not in text]
    assert not missing, f"add `::: jaxrl.agents.<name>` blocks to docs/api/agents.md: {missing}"


def test_every_public_function_and_class_has_a_docstring():
    missing = []
    for info in pkgutil.walk_packages(jaxrl.__path__, "jaxrl."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # a re-export: checked in the module that defines it
            doc = (obj.__doc__ or "").strip()
            # NamedTuples and dataclasses get a generated "Name(field, ...)" docstring.
            if not doc or (inspect.isclass(obj) and doc.startswith(f"{name}(")):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public names without a docstring: {missing}"

"""Build each peer library's virtualenv on first use, cached under ``benchmarks/peers/.venvs/``.

A peer ``NAME`` is pinned by ``requirements-NAME.txt`` beside this file and runs through
``NAME_runner.py`` inside its own venv (peers pin versions that jaxrl's venv cannot hold, e.g.
rejax needs gymnax 0.0.9). The venv also sees this interpreter's site-packages, behind its own,
so pip installs only what jaxrl's environment does not already satisfy (rejax: rejax and gymnax
0.0.9, ≈ 10 s). The venv is rebuilt when the requirements file changes (its hash is
stored in the venv as ``.requirements.sha256``); a failed build leaves no half-made venv behind
and raises ``PeerUnavailable`` with pip's error, which ``run.py`` records in the peer's rows.

    python benchmarks/peers/venvs.py rejax        # build (or check) one peer's venv
"""

from __future__ import annotations

import hashlib
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["PEERS", "PeerUnavailable", "ensure_venv", "runner_script"]

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PEERS = ("rejax", "sbx")
BUILD_TIMEOUT_S = 1800


# Run inside the new venv: a .pth file appends this interpreter's site-packages to the venv's
# path, after the venv's own. pip then finds pins that jaxrl's environment already satisfies
# (jax, jaxlib, flax, optax, … at constraints.txt's versions) and installs only the rest, into
# the venv, where they shadow jaxrl's copies (rejax's gymnax 0.0.9 over jaxrl's 1.x; pip leaves
# packages outside the venv alone). First use takes seconds instead of minutes of downloads.
_SHARE_PARENT = ("import pathlib, sys, sysconfig; "
                 "pathlib.Path(sysconfig.get_paths()['purelib'], '_jaxrl_parent.pth')"
                 ".write_text('\\n'.join(sys.argv[1:]) + '\\n')")


class PeerUnavailable(RuntimeError):
    """A peer's venv could not be built; the message holds the reason (pip's output tail)."""


def _requirements(name: str) -> Path:
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose one of: {', '.join(PEERS)}")
    return HERE / f"requirements-{name}.txt"


def runner_script(name: str) -> Path:
    """The runner that executes one benchmark case inside peer ``name``'s venv."""
    _requirements(name)
    return HERE / f"{name}_runner.py"


def ensure_venv(name: str, log=print) -> tuple[Path, float]:
    """``(python, build_seconds)`` of peer ``name``'s venv, building it first if it is missing
    or its requirements changed (``build_seconds`` is 0 for a cached venv).

    Builds with ``python3 -m venv`` and pip into a temporary directory, then renames it into
    place, so an interrupted build never looks usable. Raises ``PeerUnavailable`` on failure.
    """
    requirements = _requirements(name)
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python, 0.0
    log(f"building the {name} virtualenv in {venv} (first use; cached afterwards) ...")
    start = time.perf_counter()
    building = VENVS / f".{name}.building"
    shutil.rmtree(building, ignore_errors=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(building)],
             [str(building / "bin" / "python"), "-c", _SHARE_PARENT, *site.getsitepackages()],
             [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", "-r", str(requirements)]]
    for command in steps:
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=BUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            shutil.rmtree(building, ignore_errors=True)
            raise PeerUnavailable(f"{name} venv build failed: {error}") from error
        if result.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            lines = [line for line in (result.stderr + result.stdout).splitlines()
                     if line.strip() and not line.startswith("WARNING: Location")]
            raise PeerUnavailable(f"{name} venv build failed ({' '.join(command[:3])} ...): "
                                  + " | ".join(lines[-5:]))
    (building / ".requirements.sha256").write_text(digest + "\n")
    # A venv's scripts hold its absolute path, so build where it will live: renaming the
    # directory would break bin/pip, but bin/python (all that the runners use) still works.
    shutil.rmtree(venv, ignore_errors=True)
    building.rename(venv)
    seconds = time.perf_counter() - start
    log(f"built the {name} virtualenv in {seconds:.0f} s")
    return python, seconds


if __name__ == "__main__":
    for peer in sys.argv[1:] or PEERS[:1]:
        try:
            path, _ = ensure_venv(peer)
            print(path)
        except PeerUnavailable as error:
            sys.exit(str(error))

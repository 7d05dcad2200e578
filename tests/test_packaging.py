"""The released package: the wheel and sdist build from a copy of the sources, pass
``twine check``, and the wheel installed into a fresh virtualenv trains 8 updates of PPO's
default config over 8 seeds with its ``jaxrl`` command.

That run and ``benchmarks/cpu_hang.py``'s vmapped training scan use a user's settings, not the
suite's: no ``$XLA_FLAGS``, so XLA:CPU's multi-threaded Eigen pool is on, and no
``$JAXRL_COMPILE_CACHE``, so the CLI turns its compile cache on itself (under a temporary
home). Both are shapes that deadlocked with jaxlib 0.10 on a CPU before jaxrl's orthogonal
initialisation stopped calling LAPACK there (issue 39; ``jaxrl.backend.lapack_qr_hangs``);
each must finish within 90 s.

The fresh venv gets jaxrl's dependencies from the test's own environment through a ``.pth``
file (its site-packages on the path, without processing that directory's ``.pth`` files, so the
editable checkout stays invisible): the test checks what the wheel ships, with no download.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import jaxrl
from jaxrl.backend import COMPILE_CACHE_ENV

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # a build, a venv and a CLI run compiling PPO


HANG_LIMIT = 90
"""Seconds a vmapped training run with the user's XLA settings may take here before it counts as
hung (each compiles in 10–20 s on the 2-core CI machine)."""


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600, stderr: bool = False) -> str:
    """The command's stdout (then its stderr where ``stderr``); fails the test unless it exits 0."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-2000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result.stdout + result.stderr if stderr else result.stdout


def test_wheel_builds_passes_twine_and_trains_from_a_fresh_venv(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "jaxrl", source / "jaxrl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--sdist", "--no-isolation", "--outdir",
         str(dist), cwd=source)
    wheels = list(dist.glob("jaxrl-*.whl"))
    assert len(wheels) == 1 and wheels[0].name.startswith(f"jaxrl-{jaxrl.__version__}-")
    assert len(list(dist.glob("jaxrl-*.tar.gz"))) == 1
    assert "PASSED" in _run(sys.executable, "-m", "twine", "check", "--strict",
                            *map(str, dist.iterdir()), cwd=tmp_path)

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    fresh_site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))", cwd=tmp_path).strip())
    (fresh_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", str(wheels[0]), cwd=tmp_path)

    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "XLA_FLAGS", COMPILE_CACHE_ENV)}
    environment["HOME"] = str(tmp_path / "home")  # where the CLI's default compile cache goes
    where = _run(str(python), "-c", "import jaxrl; print(jaxrl.__file__, jaxrl.__version__)",
                 cwd=tmp_path, env=environment).split()
    assert Path(where[0]).is_relative_to(fresh_site) and where[1] == jaxrl.__version__
    output = _run(str(fresh / "bin" / "jaxrl"), "train", "ppo", "--env", "CartPole-v1",
                  "--total-timesteps", "2048", "--seeds", "8", "--out", str(tmp_path / "run"),
                  "--no-progress", cwd=tmp_path, env=environment, timeout=HANG_LIMIT,
                  stderr=True)
    assert "results in" in output
    default_cache = tmp_path / "home" / ".cache" / "jaxrl" / "xla"
    assert "compile cache off" not in output and default_cache.is_dir(), output
    assert (tmp_path / "run" / "metrics.csv").exists()
    output = _run(str(python), str(ROOT / "benchmarks" / "cpu_hang.py"), "--shape", "scan",
                  "--seeds", "16", "--steps", "1000", "--repeats", "2",
                  "--timeout", str(HANG_LIMIT - 5), cwd=tmp_path, env=environment,
                  timeout=HANG_LIMIT)
    assert "XLA_FLAGS=''" in output and output.strip().endswith("finished"), output

"""The built wheel in a fresh virtual environment outside the checkout, as a user installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT, suite_environ

PIP = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@dataclass
class Installed:
    venv: Path
    dist: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environ = {**suite_environ(), **(env or {})}
        environ["PATH"] = f"{self.bin}{os.pathsep}{environ.get('PATH', '')}"
        environ.pop("PYTHONPATH", None)
        return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=600)

    def pip(self, *packages: str) -> None:
        check(subprocess.run([str(self.bin / "python"), *PIP, *packages], capture_output=True, text=True, timeout=900))

    def remove(self) -> None:
        shutil.rmtree(self.venv, ignore_errors=True)


def check(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def build(dist: Path) -> Path:
    """The sdist and the wheel of the checkout, into `dist`; the wheel's path."""
    check(subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
                         capture_output=True, text=True, timeout=600))
    return dist / f"postdeploy-{VERSION}-py3-none-any.whl"


def fresh_venv(dist: Path, *before: str) -> Installed:
    """A new virtual environment with `before` installed, then the wheel built into `dist`."""
    # Not under pytest's temporary root: every pytest that starts resets that to mode 0700, and the
    # embedded server's binaries in this environment run as another user than root.
    venv = Path(tempfile.mkdtemp(prefix="postdeploy-venv-"))
    venv.chmod(0o755)
    check(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120))
    installed = Installed(venv, dist)
    if before:
        installed.pip(*before)
    installed.pip(str(next(dist.glob("*.whl"))))
    return installed

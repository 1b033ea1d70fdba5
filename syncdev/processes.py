"""The soak's processes: the Procfile's lines, each started in its own process group so it can be killed whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path


def procfile_read(path: Path) -> dict[str, str]:
    """The process types of a Procfile (``name: command`` lines; blank lines and ``#`` comments skipped)."""
    types = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().isidentifier() or not command.strip():
            raise ValueError(f"{path}:{number}: expected 'name: command', got {line!r}")
        types[name.strip()] = command.strip()
    return types


class Process:
    """One running copy of a process type; a kill takes its whole group (a qcluster and its workers), as a
    machine that dies would."""

    def __init__(self, name: str, command: str, *, cwd: Path, env: dict[str, str], log: Path):
        self.name, self.command, self.cwd, self.env, self.log = name, command, cwd, env, log
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        # The Procfile's commands name `python` and `gunicorn`: this interpreter's, as a deployment's venv would.
        bin_dir = str(Path(sys.executable).parent)
        env = {**self.env, "PATH": f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"}
        with open(self.log, "a") as out:
            self.popen = subprocess.Popen(
                ["bash", "-c", f"exec {self.command}"],
                cwd=self.cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: nothing gets to finish or clean up."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 20) -> None:
        if not self.running:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # A qcluster's children may outlive their parent's exit briefly.
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

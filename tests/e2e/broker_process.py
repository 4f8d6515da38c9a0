"""A real `toshi serve` child process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """One `toshi serve` child process on a private port and data directory."""

    def __init__(
        self,
        data: Path,
        env: dict[str, str] | None = None,
        *,
        log: Path | None = None,
        store: str | None = None,
    ) -> None:
        self.data = data
        self.store = store or f"sqlite:///{data}"
        """Its store URL (default: a SQLite directory at ``data``)."""
        self.env = env or {}
        self.log = log
        """Where its log (stderr) goes, kept across restarts; None: a pipe nobody reads."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "broker",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--store",
            self.store,
            "--log-level",
            "warning",
        ]
        log = None if self.log is None else self.log.open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if log is None else log,
            env={**os.environ, **self.env},
        )
        if log is not None:
            log.close()  # the child has its own copy
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"toshi exited: {self.log_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("toshi did not become healthy within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    def log_text(self) -> str:
        """What it logged so far (with ``log``), or, once it has exited, its whole stderr."""
        if self.log is not None:
            return self.log.read_text(errors="replace")
        assert self.process is not None and self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

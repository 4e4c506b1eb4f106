"""Debian's nginx as a subprocess, running a copy of a shipped config (docs/deploy/nginx.conf) whose listen port and
upstream servers are rewritten to the test's own ports; stopped by its own PID."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.e2e.process import ROOT
from tests.helpers import wait_for

__all__ = ["DEPLOY_CONFIG", "NginxProxy", "check_config", "nginx_binary", "render"]

DEPLOY_CONFIG = ROOT / "docs" / "deploy" / "nginx.conf"
# Debian installs nginx in /usr/sbin, which an unprivileged user's PATH often lacks.
SBIN_PATH = "/usr/sbin:/sbin"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

_LISTEN = re.compile(r"^(?P<indent>[ \t]*)listen[ \t]+(?:\S+:)?\d+(?P<params>[^;]*);", re.MULTILINE)
_UPSTREAM = re.compile(r"^[ \t]*upstream[ \t]+(?P<name>\S+)[ \t]*\{.*?^[ \t]*\}", re.MULTILINE | re.DOTALL)
_SERVER = re.compile(r"^(?P<indent>[ \t]*)server[ \t]+127\.0\.0\.1:\d+(?P<params>[^;]*);[^\n]*\n", re.MULTILINE)


def nginx_binary() -> str:
    """The nginx executable; fails the test with what to do when it is not installed."""
    found = shutil.which("nginx") or shutil.which("nginx", path=SBIN_PATH)
    if found is None:
        pytest.fail("nginx is not installed; run `make nginx` (Debian's nginx package, needs root) and run the "
                    "tests again")
    return found


def render(config: str, port: int, backends: Sequence[int]) -> str:
    """`config` listening on 127.0.0.1:`port` only, with each upstream group's `server 127.0.0.1:PORT ...;` lines
    replaced by one line per port of `backends`. The i-th new line keeps the parameters (max_fails=...) of the
    i-th old one, or of the last one when there are more backends than lines. Nothing else changes, so the test
    runs what is shipped; ValueError when the config has no listen line or a group without server lines."""
    if not backends:
        raise ValueError("no backend ports: give NginxProxy at least one")
    rendered, listens = _LISTEN.subn(lambda m: f"{m['indent']}listen 127.0.0.1:{port}{m['params']};", config)
    if listens == 0:
        raise ValueError("the config has no `listen PORT;` line to rewrite")
    return _UPSTREAM.sub(lambda m: _with_servers(m, backends), rendered)


def _with_servers(upstream: re.Match[str], backends: Sequence[int]) -> str:
    """One `upstream NAME {...}` block with its server lines replaced, in the place of the first one."""
    block = upstream.group(0)
    servers = list(_SERVER.finditer(block))
    if not servers:
        raise ValueError(f"upstream {upstream['name']} has no `server 127.0.0.1:PORT ...;` line to rewrite")
    lines = "".join(f"{servers[0]['indent']}server 127.0.0.1:{backend}{servers[min(i, len(servers) - 1)]['params']};\n"
                    for i, backend in enumerate(backends))
    first = servers[0].start()
    return block[:first] + lines + _SERVER.sub("", block[first:])


def _unprivileged_prelude() -> str:
    """What a copy needs on top of the shipped config to run as the test's user. The shipped one keeps its
    pid file, logs and temp paths in the prefix already; only a root master would hand its workers to `nobody`,
    who cannot enter the test's private temp directory: keep them as the user running the test."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};  # added by tests/e2e/nginx.py: workers as the test's user\n"


def check_config(config: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `config` as it is, with `prefix` (created) for the paths it names relative to it."""
    prefix.mkdir(parents=True, exist_ok=True)
    return subprocess.run([nginx_binary(), "-t", "-e", "stderr", "-p", f"{prefix}/", "-c", str(config.resolve())],
                          capture_output=True, text=True, timeout=STOP_TIMEOUT)


class NginxProxy:
    """nginx in the foreground running `config` rewritten to listen on 127.0.0.1:`port` and to proxy to the
    gateways on 127.0.0.1:`backends` (any number), with `workdir` as its prefix (config, pid, logs, temp)."""

    def __init__(self, port: int, backends: Sequence[int], workdir: Path, config: Path = DEPLOY_CONFIG) -> None:
        self.port = port
        self.backends = list(backends)
        self.workdir = workdir
        self.source = config
        self.config = workdir / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NginxProxy:
        binary = nginx_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        shipped = self.source.read_text()
        self.config.write_text(_unprivileged_prelude() + render(shipped, self.port, self.backends))
        self._stderr = open(self.workdir / "stderr.log", "ab")
        # A session of its own, so that the master and its workers can all be killed by the master's PID (its
        # process group) should a graceful stop hang.
        self.proc = subprocess.Popen(
            [binary, "-e", "stderr", "-p", f"{self.workdir}/", "-c", str(self.config), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._accepts, timeout=START_TIMEOUT, message=f"nginx did not accept connections; {self.logs()}")
        return self

    def _accepts(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited with {self.proc.returncode}; {self.logs()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def error_log(self) -> str:
        return self._read("error.log")

    def access_log(self) -> str:
        return self._read("access.log")

    def logs(self) -> str:
        """Everything nginx said, for a failure message: its stderr (before the config's error_log took over)
        and the error log."""
        return f"stderr: {self._read('stderr.log')!r}; error.log: {self.error_log()!r}"

    def _read(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> int | None:
        """SIGQUIT (finish what is under way, then exit; the shipped worker_shutdown_timeout bounds open
        WebSockets), then SIGKILL to the whole process group after STOP_TIMEOUT. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._stderr.close()
        return self.proc.returncode

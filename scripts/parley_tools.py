"""What the Python scripts share: a free port, starting a parley-server and waiting for its
/healthz, and rewriting a generated section of a document. Imported by scripts/chaos.py,
bench/run.py and Tests/Web/test_browser.py; the shell scripts call it as
`python3 scripts/parley_tools.py free-port` and `... wait-http URL [SECONDS]`.
Standard library only.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, seconds=60, process=None, name=None):
    """Returns once `url` answers; raises when `process` exits first or `seconds` pass."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name or url} exited with {process.returncode} before answering")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name or url} did not answer in {seconds:g} s")


class Server:
    """One parley-server process on a free port, its output appended to `log_path`."""

    def __init__(self, binary, env, log_path, arguments=(), name="parley-server"):
        self.binary, self.env, self.log_path, self.arguments, self.name = binary, env, log_path, list(arguments), name
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def start(self, seconds=60):
        """Starts it and waits for /healthz; a server that exits first says so."""
        log = open(self.log_path, "a")
        self.process = subprocess.Popen([self.binary, "--port", str(self.port)] + self.arguments, env=self.env, cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_http(f"{self.url}healthz", seconds, self.process, self.name)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; see {self.log_path}") from None

    def kill9(self):
        self.process.kill()
        self.process.wait()

    def stop(self, seconds=15):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def replace_section(path, begin, end, body):
    """Puts `begin`, `body`, `end` in the document at `path`: in place of the section
    between those markers, or at its end when it has none."""
    with open(path) as f:
        text = f.read()
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["free-port"]:
        print(free_port())
    elif sys.argv[1:2] == ["wait-http"] and len(sys.argv) in (3, 4):
        try:
            wait_http(sys.argv[2], float(sys.argv[3]) if len(sys.argv) == 4 else 60)
        except RuntimeError as error:
            sys.exit(f"parley_tools: {error}")
    else:
        sys.exit("usage: parley_tools.py free-port | wait-http URL [SECONDS]")

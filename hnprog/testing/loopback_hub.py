"""A loopback Hugging Face Hub: serves model repositories over HTTP on 127.0.0.1.

hnprog's own tests and examples use it to exercise the real Hub download code without the
internet; use it likewise to test code that loads presets from ``hf://`` URIs offline.

It speaks the part of the Hub protocol that ``huggingface_hub.hf_hub_download`` uses:
``HEAD`` and ``GET /{org}/{repo}/resolve/{revision}/{file}`` answering with ``X-Repo-Commit``,
``ETag`` (the file's sha256, as the Hub does for LFS files) and ``Content-Length``, and 404s
carrying the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).
Files named in :attr:`LoopbackHub.truncate` are sent with their full ``Content-Length`` but
only half their bytes, as a broken connection would. Every request is recorded in
:attr:`LoopbackHub.requests`.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.parse
from pathlib import Path


class LoopbackHub:
    """An in-memory Hub of model repositories, served on ``127.0.0.1`` on a free port.

    Example:
        >>> with LoopbackHub() as hub:  # doctest: +SKIP
        ...     commit = hub.add_folder("org/repo", "preset/", tags=["v1"])
        ...     hf_hub_download("org/repo", "hnprog.json", endpoint=hub.endpoint)
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.truncate: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content ----------------------------------------------------------------------------

    def add_commit(self, repo_id: str, files: dict[str, bytes], *, refs: tuple = ("main",)) -> str:
        """Add a commit holding ``files``, point ``refs`` (branches/tags) at it, return its id."""
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name])
        commit = digest.hexdigest()
        repo["commits"][commit] = dict(files)
        for ref in refs:
            repo["refs"][ref] = commit
        return commit

    def add_folder(self, repo_id: str, folder: str | Path, *, tags: tuple = ()) -> str:
        """Add a commit with every file of ``folder`` on ``main`` (and ``tags``)."""
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes()
                 for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add_commit(repo_id, files, refs=("main", *tags))

    # -- server -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackHub:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- protocol ---------------------------------------------------------------------------

    def lookup(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Answer ``/{org}/{repo}/resolve/{revision}/{file}``: status, headers, body."""
        head, sep, tail = urllib.parse.urlsplit(path).path.partition("/resolve/")
        repo_id = urllib.parse.unquote(head.strip("/"))
        if not sep or repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        revision_quoted, _, file_quoted = tail.partition("/")
        revision = urllib.parse.unquote(revision_quoted)
        filename = urllib.parse.unquote(file_quoted)
        repo = self.repos[repo_id]
        commit = revision if revision in repo["commits"] else repo["refs"].get(revision)
        if commit is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found"
        files = repo["commits"][commit]
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"Not found"
        body = files[filename]
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
            "Content-Type": "application/octet-stream",
        }
        return 200, headers, body


def _handler_for(hub: LoopbackHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, send_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            status, headers, body = hub.lookup(self.path)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not send_body:
                return
            filename = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
            if status == 200 and filename in hub.truncate:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
            self._answer(send_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(send_body=True)

        def log_message(self, *args: object) -> None:
            pass

    return Handler

"""A local stand-in for the four Hub routes create_repo and upload_folder call (huggingface_hub 2.4:
POST /api/repos/create, /api/validate-yaml, /api/models/{repo}/preupload/{rev}, /api/models/{repo}/commit/{rev}),
on 127.0.0.1, recording every request and the files each commit carried. Every file is answered "regular" (inline
base64 in the commit); the real Hub sends large files through LFS/Xet, which this server never exercises."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/?]+)")
_COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/?]+)")


@dataclass
class HubRecord:
    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    authorizations: list[str] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)  # create_repo payloads
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> path -> content
    commits: list[dict] = field(default_factory=list)  # commit headers


def _handler(record: HubRecord):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            record.requests.append(("GET", self.path))
            self._answer(404, {"error": "not served by the fake hub"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record.requests.append(("POST", self.path))
            record.authorizations.append(self.headers.get("Authorization", ""))
            if self.path.startswith("/api/repos/create"):
                payload = json.loads(body)
                record.created.append(payload)
                repo = f"{payload.get('organization') or 'user'}/{payload['name']}"
                return self._answer(200, {"url": f"{record.url}/{repo}", "name": repo})
            if self.path.startswith("/api/validate-yaml"):
                return self._answer(200, {"errors": [], "warnings": []})
            if match := _PREUPLOAD.match(self.path):
                files = json.loads(body)["files"]
                return self._answer(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                    for f in files]})
            if match := _COMMIT.match(self.path):
                stored = record.files.setdefault(match["repo"], {})
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        record.commits.append(item["value"])
                    elif item["key"] == "file":
                        stored[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                return self._answer(200, {"commitUrl": f"{record.url}/{match['repo']}/commit/{'0' * 40}",
                                          "commitOid": "0" * 40})
            return self._answer(404, {"error": f"not served by the fake hub: {self.path}"})

    return Handler


@contextlib.contextmanager
def fake_hub():
    """Yields a HubRecord whose url is the running server's endpoint; the server stops afterwards."""
    record = HubRecord()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(record))
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""A real ComfyUI server for tests: `main.py --cpu` on 127.0.0.1 under a temp --base-directory, with this pack
symlinked as custom_nodes/loba; HTTP helpers and a websocket follower that queues a graph and records what the
browser would see.

Shared by the server end-to-end tests, the example-workflow tests and the browser tests (one server per module).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

from .comfyui import REPO_ROOT, find_comfyui

STARTUP_SECONDS = 120
BINARY_PREVIEW_TYPES = {1, 4}  # PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, extra_args: tuple[str, ...] = ()) -> SimpleNamespace:
    """Start ComfyUI with the pack as custom_nodes/loba; returns once /system_stats answers."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "loba").symlink_to(REPO_ROOT, target_is_directory=True)
    port = free_port()
    log = open(base / "server.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    process = subprocess.Popen([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                                "--base-directory", str(base), "--disable-auto-launch", *extra_args],
                               cwd=str(find_comfyui()), stdout=log, stderr=subprocess.STDOUT, env=env)
    server = SimpleNamespace(url=f"http://127.0.0.1:{port}", base=base, log=base / "server.log", process=process, log_file=log)
    deadline = time.time() + STARTUP_SECONDS
    while True:
        try:
            urllib.request.urlopen(server.url + "/system_stats", timeout=2).read()
            return server
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                stop_server(server)
                raise RuntimeError("ComfyUI did not start:\n" + server.log.read_text()[-4000:]) from None
            time.sleep(0.5)


def stop_server(server: SimpleNamespace) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
    server.log_file.close()


def get_json(server, path: str):
    with urllib.request.urlopen(server.url + path, timeout=30) as response:
        return json.loads(response.read())


def post_json(server, path: str, data: dict | None = None):
    request = urllib.request.Request(server.url + path, data=json.dumps(data or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


def fetch_bytes(server, path: str) -> bytes:
    with urllib.request.urlopen(server.url + path, timeout=30) as response:
        return response.read()


async def run_graph(server, graph: dict, on_event=None, timeout: float = 600, extra_data: dict | None = None) -> dict:
    """Queue a graph and follow the websocket until it ends; returns what was seen."""
    import aiohttp  # ComfyUI's own dependency: the test client

    client_id = uuid.uuid4().hex
    seen = {"events": [], "binary": 0, "ended": None}
    body = {"prompt": graph, "client_id": client_id, **({"extra_data": extra_data} if extra_data else {})}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{server.url.replace('http', 'ws')}/ws?clientId={client_id}") as ws:
            async with session.post(f"{server.url}/prompt", json=body) as response:
                queued = await response.json()
                assert response.status == 200, queued
            prompt_id = queued["prompt_id"]
            deadline = time.time() + timeout
            while seen["ended"] is None:
                message = await ws.receive(timeout=max(1.0, deadline - time.time()))
                if message.type == aiohttp.WSMsgType.BINARY:
                    if int.from_bytes(message.data[:4], "big") in BINARY_PREVIEW_TYPES:
                        seen["binary"] += 1
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"websocket closed: {message.type}")
                event = json.loads(message.data)
                seen["events"].append(event)
                data = event.get("data", {})
                if on_event is not None:
                    await on_event(session, event)
                if data.get("prompt_id", prompt_id) != prompt_id:
                    continue
                if event["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                    seen["ended"] = event
    seen["prompt_id"] = prompt_id
    return seen


def of_type(seen: dict, kind: str) -> list[dict]:
    return [e["data"] for e in seen["events"] if e["type"] == kind]

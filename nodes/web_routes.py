"""HTTP routes for the browser: the latest state of each Train Slider run (seam.RUNS), so a page reloaded
mid-run redraws the loss chart from what it missed before following the live `loba.loss` events again.

Registered once when ComfyUI loads the extension (never at import): PromptServer collects the routes of every
pack before it starts serving, so adding them to its route table during loading is enough.
"""

from __future__ import annotations

import sys

from aiohttp import web

from .seam import RUNS

ROUTES_REGISTERED = {"done": False}


def run_summary(state: dict) -> dict:
    """A run without its per-step lists: what GET /loba/runs lists."""
    return {key: value for key, value in state.items() if key not in ("losses", "learning_rates")}


async def list_runs(request: web.Request) -> web.Response:
    return web.json_response({node: run_summary(state) for node, state in RUNS.items()})


async def get_run(request: web.Request) -> web.Response:
    state = RUNS.get(request.match_info["node_id"])
    if state is None:
        return web.json_response({"error": "no run of this node since the server started"}, status=404)
    return web.json_response(state)


def register_routes() -> bool:
    """Add the routes to the running PromptServer; False when there is none (in-process tests). Idempotent."""
    if ROUTES_REGISTERED["done"]:
        return True
    # A running ComfyUI has imported its server module already; importing it here would start one's worth of imports.
    prompt_server = getattr(sys.modules.get("server"), "PromptServer", None)
    server = getattr(prompt_server, "instance", None)
    if server is None:
        return False
    server.routes.get("/loba/runs")(list_runs)
    server.routes.get("/loba/runs/{node_id}")(get_run)
    ROUTES_REGISTERED["done"] = True
    return True

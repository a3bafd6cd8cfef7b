"""The Serve application behind `/tune`: a read-only FastAPI ingress over the Tune experiments in a run storage.

How to run:
    serve run serving/config.yaml                  # every app, the dashboard at http://127.0.0.1:8000/tune
    serve run serving.tune_dashboard.app:build_app storage=runs

Routes (relative to the route prefix): `/` the page, `/dashboard.js` its script, `/api/experiments` the list
(newest first), `/api/experiments/{name}` one experiment; unknown or path-like names answer 404.
"""

import html
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve

from serving.schemas import errors
from serving.tune_dashboard.experiments import ExperimentStore

HERE = Path(__file__).parent
PROJECT_ROOT = HERE.parent.parent
NO_STORE = {"Cache-Control": "no-store"}
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

api = FastAPI(title="dlwild Tune dashboard", description="Tune experiments of the run storage, read-only.")


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32)
@serve.ingress(api)
class TuneDashboard:
    """One replica holds the parse cache; polling browsers then cost a few file stats per request."""

    def __init__(self, storage: str):
        self.store = ExperimentStore(storage)
        self.page = (HERE / "index.html").read_text()
        self.script = (HERE / "dashboard.js").read_text()

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(self, request: Request) -> HTMLResponse:
        """The page; its script and API calls go to the route prefix Serve mounted us at."""
        root = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
        return HTMLResponse(self.page.replace("__ROOT__", root), headers=PAGE_HEADERS)

    @api.get("/dashboard.js", include_in_schema=False)
    def script_file(self) -> Response:
        return Response(self.script, media_type="text/javascript", headers=PAGE_HEADERS)

    @api.get("/api/experiments")
    def experiments(self) -> JSONResponse:
        """Every experiment: name, workload, searcher, data set, status, best score, trials done, elapsed."""
        return JSONResponse(self.store.list_experiments(), headers=NO_STORE)

    @api.get("/api/experiments/{name}", responses=errors(404))
    def experiment(self, name: str) -> JSONResponse:
        """One experiment: trials, best-so-far per searcher over time, per-hyperparameter values, RL curves."""
        data = self.store.experiment(name)
        if data is None:
            raise HTTPException(status_code=404, detail="no such experiment")
        return JSONResponse(data, headers=NO_STORE)


def build_app(args: dict[str, Any] | None = None):
    """Serve app builder (`args: {storage: ...}` in serving/config.yaml). The storage defaults to $DLWILD_RUNS or
    `runs`; a relative folder counts from the project root (where serving/ lies), whatever folder Ray builds the
    app in, so `storage: runs` is the project's runs/."""
    storage = str((args or {}).get("storage") or os.environ.get("DLWILD_RUNS", "runs"))
    if "://" not in storage:
        storage = str(PROJECT_ROOT / storage)
    return TuneDashboard.bind(storage)

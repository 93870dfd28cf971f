"""The dashboard's routes: the page, and JSON over the SDK that the page and scripts share.

GET  /                                      the page (CSRF token embedded)
GET  /api/session                           {"csrf": ...} for scripts that POST
GET  /api/features                          which optional SDK features exist (features.py)
GET  /api/clusters                          api.status(), shared backend included
GET  /api/clusters/{name}/jobs              api.queue(name)
GET  /api/clusters/{name}/jobs/{id}         api.job_status(name, id)
GET  /api/clusters/{name}/jobs/{id}/logs    text/event-stream of api.tail_logs
POST /api/clusters/{name}/jobs/{id}/cancel  api.cancel(name, [id])
POST /api/clusters/{name}/down              api.down(name)
POST /api/clusters/{name}/stop | start      api.stop / api.start, when they exist
GET  /api/cost                              api.cost_report() as a chart, or an estimate
GET  /api/managed-jobs                      api.managed_jobs_queue(), when it exists

Handlers are plain functions (Starlette runs them in its thread pool): the SDK
blocks on SSH and Terraform. SDK errors become {"error": message} with a 4xx
status; the message is the same one the CLI prints.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from skyterra.dashboard import cost, features, logstream, views
from skyterra.dashboard.security import Guard, Policy
from skyterra.errors import ClusterNotFoundError, SkyterraError, TaskError

STATIC = Path(__file__).resolve().parent / "static"


def _api():
    from skyterra import api

    return api


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def one_at_a_time(cluster_name: str) -> threading.Lock:
    """This server's SDK calls that refresh or change one cluster's jobs run one at a time.

    jobs.refresh finishes a job from the record it read before asking the nodes; run
    during a cancel, it can see the killed processes and save FAILED over CANCELLED.
    The page polls the queue while the user cancels, so this server never overlaps the two.
    """
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(cluster_name, threading.Lock())


def create_app(policy: Policy, stopping: threading.Event | None = None) -> Guard:
    """The ASGI app for one server, wrapped in its Guard. Setting `stopping` ends the
    open log streams (the server sets it when asked to exit)."""
    stopping = stopping or threading.Event()
    page = (STATIC / "index.html").read_text().replace("{{csrf}}", html.escape(policy.csrf))

    def index(request: Request) -> Response:
        return HTMLResponse(page)

    def session(request: Request) -> Response:
        return JSONResponse({"csrf": policy.csrf})

    async def job_logs(request: Request) -> Response:
        events = logstream.job_log_events(request.path_params["name"],
                                          request.path_params["job_id"], stopping)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    routes = [
        Route("/", index),
        Route("/api/session", session),
        Route("/api/features", lambda request: JSONResponse(features.available())),
        Route("/api/clusters", clusters),
        Route("/api/clusters/{name}/jobs", cluster_jobs),
        Route("/api/clusters/{name}/jobs/{job_id:int}", one_job),
        Route("/api/clusters/{name}/jobs/{job_id:int}/logs", job_logs),
        Route("/api/clusters/{name}/jobs/{job_id:int}/cancel", cancel_job, methods=["POST"]),
        Route("/api/clusters/{name}/down", down_cluster, methods=["POST"]),
        Route("/api/clusters/{name}/stop", lambda r: _optional_action(r, "stop"),
              methods=["POST"]),
        Route("/api/clusters/{name}/start", lambda r: _optional_action(r, "start"),
              methods=["POST"]),
        Route("/api/cost", cost_chart),
        Route("/api/managed-jobs", managed_jobs),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={SkyterraError: sdk_error,
                                                       Exception: unexpected_error})
    return Guard(app, policy)


def sdk_error(request: Request, error: Exception) -> Response:
    """The SDK's message, with a status that tells scripts what kind of problem it is."""
    if isinstance(error, ClusterNotFoundError):
        status = 404
    elif isinstance(error, TaskError):
        status = 400
    else:  # busy, not UP, no such job: the request is fine, the cluster's state is not
        status = 409
    return JSONResponse({"error": str(error)}, status_code=status)


def unexpected_error(request: Request, error: Exception) -> Response:
    """A bug or an unexpected failure (the traceback goes to the server's log): the page
    shows one line instead of "Internal Server Error"."""
    return JSONResponse({"error": f"unexpected {type(error).__name__}: {error}; the "
                                  "dashboard's terminal shows the details."}, status_code=500)


def clusters(request: Request) -> Response:
    now = time.time()
    return JSONResponse([views.cluster_view(r, now) for r in _api().status()])


def cluster_jobs(request: Request) -> Response:
    now = time.time()
    with one_at_a_time(request.path_params["name"]):
        rows = _api().queue(request.path_params["name"])
    return JSONResponse([views.job_view(job, now) for job in rows])


def one_job(request: Request) -> Response:
    with one_at_a_time(request.path_params["name"]):
        job = _api().job_status(request.path_params["name"], request.path_params["job_id"])
    return JSONResponse(views.job_view(job))


def cancel_job(request: Request) -> Response:
    with one_at_a_time(request.path_params["name"]):
        done = _api().cancel(request.path_params["name"], [request.path_params["job_id"]])
    return JSONResponse({"cancelled": done})


def down_cluster(request: Request) -> Response:
    progress: list[str] = []
    with one_at_a_time(request.path_params["name"]):
        outcome = _api().down(request.path_params["name"], progress=progress.append)
    if outcome is False:
        raise ClusterNotFoundError(f"cluster '{request.path_params['name']}' does not exist "
                                   "(already destroyed?).")
    return JSONResponse({"outcome": outcome})


def _optional_action(request: Request, feature: str) -> Response:
    action = features.function(feature)
    if action is None:
        return JSONResponse({"error": f"this skyterra has no `{feature}` yet."},
                            status_code=501)
    action(request.path_params["name"])
    return JSONResponse({"outcome": feature})


def cost_chart(request: Request) -> Response:
    now = time.time()
    report = features.function("cost_report")
    if report is not None:
        spans = cost.spans_from_report([views.sanitize(row) for row in report()], now)
        return JSONResponse(cost.chart(spans, "cost_report", now))
    return JSONResponse(cost.chart(cost.spans_from_status(_api().status()), "estimate", now))


def managed_jobs(request: Request) -> Response:
    queue = features.function("managed_jobs")
    if queue is None:
        return JSONResponse({"error": "this skyterra has no managed jobs yet."},
                            status_code=501)
    return JSONResponse([views.sanitize(job) for job in queue()])

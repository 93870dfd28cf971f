"""`skyterra dashboard`: a local web page over the SDK (clusters, jobs, live logs, cost).

Everything the page shows comes from skyterra.api (status, queue, tail_logs,
cancel, down, ...) through JSON endpoints that scripts can use too; there is
no second source of truth. Modules, one noun each:

  views.py     SDK records -> the JSON we serve (a whitelist: no envs, no secrets)
  features.py  SDK functions that may not exist yet (stop/start, cost report,
               managed jobs): detected with hasattr on skyterra.api
  cost.py      cost over time (the SDK's cost report, or an estimate from status)
  security.py  the access token, Host/Origin/CSRF checks, security headers
  logstream.py a job's log lines as server-sent events
  app.py       the Starlette routes
  server.py    bind checks and uvicorn
  static/      the page: plain HTML, CSS and JS, no build step

Starlette and uvicorn come with the `dashboard` extra and are imported only
here, so `skyterra --help` stays fast.
"""

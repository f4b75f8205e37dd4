"""The dashboard: a Dash (Plotly) web app over the HTTP API, holding no state and reaching no database.

::

    quantfleet web --host 127.0.0.1 --port 8050 --api-url http://127.0.0.1:8000

A face like the CLI and the HTTP API: it imports the Python client, the
analytics chart builders and core, never the job service, the store or the
dispatcher (import-linter checks that).
"""

from quantfleet.web.app import create_app
from quantfleet.web.server import serve

__all__ = ["create_app", "serve"]

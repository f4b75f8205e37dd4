"""The HTTP API face: FastAPI routers over the job service, the user service and the market-data store.

``create_app()`` returns the application; ``quantfleet api`` serves it with uvicorn.
"""

from quantfleet.api.app import create_app
from quantfleet.api.deps import Authenticator, Principal
from quantfleet.api.settings import ApiSettings

__all__ = ["ApiSettings", "Authenticator", "Principal", "create_app"]

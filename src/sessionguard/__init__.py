"""sessionguard: server-side session policy for any ASGI or WSGI app."""

from __future__ import annotations

from .anomaly import Anomaly as Anomaly
from .asgi import SessionGuardMiddleware as SessionGuardMiddleware
from .config import Config as Config
from .context import AsyncSessionContext as AsyncSessionContext
from .context import SessionContext as SessionContext
from .errors import ConfigurationError as ConfigurationError
from .errors import SessionLimitReached as SessionLimitReached
from .errors import StoreUnavailable as StoreUnavailable
from .guard import SessionGuard as SessionGuard
from .session import Session as Session
from .wsgi import WSGIMiddleware as WSGIMiddleware

__version__ = "0.1.0"

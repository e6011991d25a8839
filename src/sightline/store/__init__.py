"""Storage: tables, migrations, the single writer, and the queries every face of Sightline shares.

Knows SQL (SQLAlchemy Core) and nothing of HTTP or templates.
"""

from .engine.database import Database
from .engine.migrate import migrate
from .generations.records import Scope

__all__ = ["Database", "Scope", "migrate"]

"""Storage: tables, migrations, the single writer, and the queries every face of Sightline shares.

Knows SQL (SQLAlchemy Core) and nothing of HTTP or templates.
"""

from .database import Database
from .migrate import migrate
from .records import Scope

__all__ = ["Database", "Scope", "migrate"]

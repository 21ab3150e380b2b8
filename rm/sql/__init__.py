"""SQL recognition, pure: statement text in, the project's own recognition out.

:mod:`.parser` is the one module that imports sqlglot; :mod:`.recognizer` caches
its results; :mod:`.builder` writes the SQL the RM runs itself (image SELECTs,
undo statements). Nothing here touches a database.
"""

from atx.rm.sql.builder import pk_condition
from atx.rm.sql.parser import parse
from atx.rm.sql.recognizer import Recognizer

__all__ = ["Recognizer", "parse", "pk_condition"]

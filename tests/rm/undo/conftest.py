from tests.rm.dbs import data_db, maria_db, pg_db

__all__ = ["data_db", "maria_db", "pg_db"]

from tests.rm.dbs import any_db, any_maria_db, any_pg_db, data_db, maria_db, pg_db

__all__ = ["any_db", "any_maria_db", "any_pg_db", "data_db", "maria_db", "pg_db"]

from tests.rm.dbs import data_db

__all__ = ["data_db"]

from sqlalchemy import MetaData

from unionhub_runtime.migrations import run_env
from unionhub_runtime.tables import add_runtime_tables

metadata = MetaData()
add_runtime_tables(metadata)
run_env(metadata, its_tables_only=True)

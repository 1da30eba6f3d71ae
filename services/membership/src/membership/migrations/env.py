from membership.adapters.orm import metadata
from unionhub_runtime.migrations import run_env

run_env(metadata)

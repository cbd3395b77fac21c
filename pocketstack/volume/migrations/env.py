from pocketstack.common.migration_env import run

run()

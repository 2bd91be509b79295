"""The clock-aware app: a FastAPI service that gates critical operations on the task's clock.

`python -m clock_app` reads the settings (see `settings`) and serves on port 8080.
"""

"""atp's benchmark harness: ``python -m bench --help``."""

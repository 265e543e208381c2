"""Example atp apps; run from the repository root: ``atp dev examples.demo:app``."""

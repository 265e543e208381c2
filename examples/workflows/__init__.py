"""Workflow examples: the three seed scenarios of atp's workflow engine."""

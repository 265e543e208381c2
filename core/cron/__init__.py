"""Cron schedules: expressions in a time zone, the planning of firings, the operations."""

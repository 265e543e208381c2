"""atp.plugins: see the sub-packages."""

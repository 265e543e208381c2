"""atp.adapters: see the sub-packages."""

"""atp's core: the task model, the ports, the hooks and the runtimes. Imports no backend."""

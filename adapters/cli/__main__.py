"""``python -m atp.adapters.cli``: the same as the ``atp`` console script."""

from atp.adapters.cli import main

if __name__ == "__main__":
    main()

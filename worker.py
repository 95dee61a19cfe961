"""Start a ged worker: `python worker.py` (the same as `ged worker`)."""

from ged.cli import main

if __name__ == "__main__":
    import sys

    sys.argv = ["ged", "worker", *sys.argv[1:]]
    main()

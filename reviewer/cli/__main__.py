"""``python -m reviewer.cli`` runs the command line (as ``python -m reviewer`` does)."""

from reviewer.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()

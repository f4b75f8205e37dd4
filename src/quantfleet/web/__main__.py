"""``python -m quantfleet.web --host ... --port ... --api-url ...``: what ``quantfleet web`` runs."""

from quantfleet.web.server import main

if __name__ == "__main__":  # pragma: no cover
    main()

"""``python -m quicsilver`` runs the command-line tool."""

from .cli import main

raise SystemExit(main())

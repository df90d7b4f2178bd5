"""``python -m sendguard``: the ``sendguard`` command."""

from sendguard.cli import main

raise SystemExit(main())

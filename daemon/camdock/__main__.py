"""``python -m camdock``: the command line."""

from camdock.cli import main

raise SystemExit(main())

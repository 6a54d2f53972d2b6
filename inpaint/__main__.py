"""`python -m inpaint` runs the `inpaint` command."""

from inpaint.cli import main

raise SystemExit(main())

"""`python -m mbrl ...` is the same as the `mbrl` command."""

from mbrl.cli import main

raise SystemExit(main())

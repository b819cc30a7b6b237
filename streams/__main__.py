"""`python -m streams`: the `emc` command."""

import sys

from streams.cli.main import main

sys.exit(main())

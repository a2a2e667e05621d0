"""`python -m migrator`: the same as the `migrator` command (for when its script is not on PATH).

Exits with migrator.cli.main()'s status.
"""

import sys

from migrator.cli import main

sys.exit(main())

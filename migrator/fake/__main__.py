"""`python -m migrator.fake`: run the fake Zuora in the foreground (same as `migrator fake-zuora`).

Exits with main()'s status.
"""

import sys

from migrator.fake._cli import main

sys.exit(main(sys.argv[1:]))

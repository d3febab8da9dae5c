"""``python -m spatialgen ...`` is the same as the ``spatialgen`` command."""

import sys

from spatialgen.cli import main

sys.exit(main())

"""``python -m helpers run|doctor``: see helpers.pipeline."""

import sys

from helpers.pipeline import main

sys.exit(main())

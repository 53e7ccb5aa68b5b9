"""`python -m framepack_widgets.cli`: the same as the `framepack` command."""

import sys

from . import main

sys.exit(main())

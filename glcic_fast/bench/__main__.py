"""``python -m glcic_fast.bench ...``: the same as ``glcic-fast bench ...``."""

import sys

from ..cli.bench import main

sys.exit(main())

"""``python -m glcic_fast.cli ...`` (what ``torchrun -m glcic_fast.cli train ...`` runs)."""

import sys

from . import main

sys.exit(main())

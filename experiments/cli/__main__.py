"""`python -m experiments.cli ...`: the same as the `optiscale` console script."""

import sys

from experiments.cli import main

sys.exit(main())

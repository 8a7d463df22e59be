"""`python -m tinylm ...`: the `tinylm` command (and what torchrun runs: `torchrun ... -m tinylm train ...`)."""

import sys

from tinylm.cli.main import main

sys.exit(main())

"""`python -m kubetune_trainer --config job.yaml` (what `accelerate launch -m kubetune_trainer` runs)."""

import sys

from kubetune_trainer.entrypoint import main

sys.exit(main())

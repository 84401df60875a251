"""`python -m tensorboard_archviz` is the `archviz` command line."""

import sys

from tensorboard_archviz.cli import main

sys.exit(main())

"""`python -m gwbox_tools`: the same as the `gwbox` command."""
import sys

from gwbox_tools.cli import main

sys.exit(main())

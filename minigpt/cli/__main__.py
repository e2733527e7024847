"""`python -m minigpt.cli`, as `python -m minigpt` and the `minigpt` command."""
import sys

from minigpt.cli import main

sys.exit(main())

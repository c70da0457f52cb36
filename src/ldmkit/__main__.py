"""`python -m ldmkit ...`: the same command line as the `ldmkit` script."""

from ldmkit.cli import main

main()

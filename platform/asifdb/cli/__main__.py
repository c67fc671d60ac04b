"""`python -m asifdb.cli`."""

from asifdb.cli.main import main

main()

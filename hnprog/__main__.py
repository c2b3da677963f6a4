"""Allow ``python -m hnprog``."""

from hnprog.cli import main

main()

"""Allow ``python -m hnprog.cli`` (as ``python -m hnprog``)."""

from hnprog.cli import main

main()

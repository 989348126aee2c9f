"""`python -m ccxtkit` runs the vhc command line."""

from ccxtkit.cli.app import run

run()

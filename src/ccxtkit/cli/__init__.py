"""The `vhc` command line: a thin skin over the core library."""

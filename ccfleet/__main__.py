"""`python -m ccfleet`: the same as the `ccfleet` command."""

from ccfleet.main import app

app()

"""``python -m gridgeo``: the command line."""

from gridgeo.cli import app

app(prog_name="gridgeo")

"""``python -m gridgeo``: the command line."""

from gridgeo.cli import app

# Guarded: a worker process of the API's process pool (spawned) imports this module again.
if __name__ == "__main__":
    app(prog_name="gridgeo")

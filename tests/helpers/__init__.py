"""Plain helpers of the test suite (no tests, no fixtures): importable as ``helpers.*``
from any test folder because pyproject puts ``tests/`` on ``sys.path`` (``pythonpath``).

- :mod:`helpers.paths`: the repository root and the sample data folder;
- :mod:`helpers.databases`: the PostgreSQL test database, empty stores, truncation;
- :mod:`helpers.tiny`: the tiny hand-drawn township (two villages, four grids);
- :mod:`helpers.events_world`: the tiny township with a catalogue exercising every routing rule;
- :mod:`helpers.hand_built`: the assessment township, every event and figure written out;
- :mod:`helpers.authn`: a user of a role and its bearer header;
- :mod:`helpers.live_server`: ``gridgeo serve`` in a process of its own, on a fresh database.

Fixtures built on them live in the ``conftest.py`` files.
"""

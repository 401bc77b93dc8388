"""The grid division planner (网格划分): balanced, compact grids that follow roads.

>>> from gridgeo.plan import divide                                  # doctest: +SKIP
>>> plan = divide(villages, households, roads, band=(300, 500))      # doctest: +SKIP
>>> plan.grids        # code, name, village_code, households, ..., geometry
>>> plan.report["metrics"]

Modules: :mod:`~gridgeo.plan.blocks` (cutting villages into blocks along roads),
:mod:`~gridgeo.plan.partition` (METIS, repairs and refinement under the hard rules),
:mod:`~gridgeo.plan.bands` (how many grids), :mod:`~gridgeo.plan.metrics`,
:mod:`~gridgeo.plan.staffing`, :mod:`~gridgeo.plan.lifecycle` (drafts, publishing,
diffs and manual edits in the store).
"""

from gridgeo.errors import InfeasibleBand, InvalidPlan
from gridgeo.plan.divide import Plan, divide, number_grids
from gridgeo.plan.metrics import evaluate
from gridgeo.plan.staffing import staffing

__all__ = ["InfeasibleBand", "InvalidPlan", "Plan", "divide", "evaluate", "number_grids", "staffing"]

"""Scale-out: batch geolocation and assessment of archives too large for one machine, on dask.

Two jobs run on a dask cluster and give the same answers as the in-process path:

:func:`~gridgeo.scale.locate.locate_parquet`
    Every point of a partitioned (Geo)Parquet data set gets the columns ``gridgeo locate``
    adds, by the same :class:`~gridgeo.locate.Locator` (:mod:`gridgeo.scale.locate`).
:func:`~gridgeo.scale.assess.assess_archive` / :func:`~gridgeo.scale.assess.assess_archive_many`
    The assessment (考核) of :mod:`gridgeo.assess` over an *archive*: events and their
    histories as partitioned Parquet (:mod:`gridgeo.scale.archive`), assessed partition by
    partition and added up to the in-process tables (:mod:`gridgeo.scale.assess`).

Where dask runs (the ``client`` argument of every function here, ``--scheduler`` on the
command line) is described in :mod:`gridgeo.scale.cluster`.
"""

from gridgeo.scale.archive import ARCHIVE_FORMAT, InvalidArchive, archive_info, export_archive
from gridgeo.scale.assess import assess_archive, assess_archive_many, partition_facts
from gridgeo.scale.cluster import dask_client
from gridgeo.scale.locate import LOCATE_COLUMNS, locate_parquet

__all__ = [
    "ARCHIVE_FORMAT",
    "LOCATE_COLUMNS",
    "InvalidArchive",
    "archive_info",
    "assess_archive",
    "assess_archive_many",
    "dask_client",
    "export_archive",
    "locate_parquet",
    "partition_facts",
]

"""Patrols (巡查): tracks read and cleaned (:mod:`.tracks`), kept with check-ins (签到) in the
store (:mod:`.service`), and distance, time and coverage per grid and worker
(:mod:`.coverage`, vectorised)."""

from gridgeo.patrols.coverage import patrol_coverage
from gridgeo.patrols.service import BY, check_in, list_patrols, patrol_stats, patrol_tracks, record_patrol
from gridgeo.patrols.tracks import Track, clean_track, parse_gpx, parse_json

__all__ = ["BY", "Track", "check_in", "clean_track", "list_patrols", "parse_gpx", "parse_json",
           "patrol_coverage", "patrol_stats", "patrol_tracks",
           "record_patrol"]

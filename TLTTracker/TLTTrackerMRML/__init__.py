"""MRML glue of the TLTTracker module: node conversions, the node-level tracking logic, the compute environment
(`environment`) and slice-view navigation (`views`).

A package (not loose .py files) because Slicer treats every .py in a module folder as a module. Needs only the
non-Qt Slicer core, so the pytest suite tests it with PyPI's ``slicer-core``.
"""

from .background import BackgroundTracking
from .logic import TrackingLogic
from .nodes import (
    TABLE_COLUMNS,
    fill_results_table,
    lesions_from_markups,
    markups_from_results,
    node_from_volume,
    results_csv,
    set_radius_from_line,
    volume_from_node,
)

__all__ = [
    "BackgroundTracking",
    "TrackingLogic",
    "TABLE_COLUMNS",
    "fill_results_table",
    "lesions_from_markups",
    "markups_from_results",
    "node_from_volume",
    "results_csv",
    "set_radius_from_line",
    "volume_from_node",
]

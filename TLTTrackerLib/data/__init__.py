"""Training data for the TLT network (torch ``Dataset``s in :mod:`.dataset`; imported only when used).

DLS records themselves are read by :mod:`TLTTrackerLib.dls` (no torch).
"""

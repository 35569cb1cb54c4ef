"""
The admin API under ``/__admin/``: routes (:mod:`.api`) and who may call them (:mod:`.access`).
"""

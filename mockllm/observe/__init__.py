"""
Observation: the exchange of each request (:mod:`.exchange`), its record (:mod:`.record`),
the in-memory journal (:mod:`.journal`), the request log (:mod:`.requestlog`), the console
line (:mod:`.console`) and the Prometheus metrics (:mod:`.metrics`).
"""

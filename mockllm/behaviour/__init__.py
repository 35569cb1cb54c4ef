"""
The behaviour: what to answer, knowing no wire format and no HTTP.

The request model (:mod:`.request`), request controls (:mod:`.controls`), the plan and its
layers (:mod:`.plan`), scenarios (:mod:`.scenarios`, public as :mod:`mockllm.scenario`),
reply content (:mod:`.content`, :mod:`.reply`), the engine that turns a plan into a script
of steps (:mod:`.engine`, :mod:`.steps`) and the executor that runs a script on a request
(:mod:`.executor`).
"""

"""
HTTP: the site and its channel (:mod:`.site`), the Klein routes (:mod:`.routes`), answering a
completion (:mod:`.completions`), the exchange lifecycle (:mod:`.exchanges`), the connection
limit (:mod:`.connlimit`), refusals below the site (:mod:`.refusal`) and listening
(:mod:`.listen`).
"""

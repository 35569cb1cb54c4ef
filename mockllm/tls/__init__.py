"""
TLS: certificate material (:mod:`.material`), the server's options and reloadable connection
creator (:mod:`.server`), reloading (:mod:`.reload`), the development PKI (:mod:`.pki`), the
verified identity of a caller (:mod:`.identity`), handshake outcomes (:mod:`.handshakes`)
and the ``mtls:`` endpoint (:mod:`.endpoint`).

Importing this package imports nothing heavy: OpenSSL and ``cryptography`` load with the
modules that need them.
"""

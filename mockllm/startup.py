"""
:class:`StartFailed`: what a service raises when it cannot start (a port that cannot be
bound, a request log that cannot be opened).
"""


class StartFailed(SystemExit, Exception):
    """
    A service could not start.  As a ``SystemExit`` it ends ``twist`` and ``twistd -n``
    with its message and exit status 1, no traceback; as an ``Exception`` it is what a
    daemonizing ``twistd`` catches and reports to the waiting parent (which would wait
    forever for a bare ``SystemExit``).
    """

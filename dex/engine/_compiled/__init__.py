"""The engine compiled by Cython: extension modules built by setup.py from
dex/engine/{book,engine,snapshot,invariants,digest,wire}.py, their .pxd files
and dex_sha256.h.

Nothing is written here by hand: `dex.engine` imports these modules when
they exist and were built from the current sources (`_stamp.py`), and falls
back to the pure engine otherwise.
"""

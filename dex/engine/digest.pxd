# Cython declarations for dex/engine/digest.py when it is compiled (an
# augmenting .pxd: the .py stays the one source, see docs/ENGINE.md).

cdef extern from "dex_sha256.h":
    bint _have_c_sha256 "dex_have_c_sha256"()
    int _c_merkle_root "dex_merkle_root"(object leaves, unsigned char *md) except -1
    bytes _c_sha256 "dex_sha256_bytes"(object data)

cdef bint _COMPILED

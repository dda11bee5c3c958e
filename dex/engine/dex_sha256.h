/* SHA-256 for the compiled engine (dex/engine/digest.pxd, snapshot.pxd).
 *
 * setup.py defines DEX_HAVE_OPENSSL and links libcrypto when this machine
 * has OpenSSL's headers; the compiled modules then hash with OpenSSL's
 * one-shot functions, one C call a hash (the same library, and so the same
 * SHA-NI code, as Python's hashlib, without a hash object, a bytes result
 * and a method call around each one). Without OpenSSL, DEX_C_SHA256 is 0 and
 * the compiled modules hash through hashlib, as the pure ones do. Either way
 * the digests are SHA-256's: tests/unit/test_digest.py holds the C paths to
 * hashlib. */
#ifndef DEX_SHA256_H
#define DEX_SHA256_H

#include <Python.h>
#include <string.h>

#ifdef DEX_HAVE_OPENSSL
/* SHA256() and SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour
 * of EVP, whose per-call algorithm fetch costs more than hashing a leaf. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#define DEX_C_SHA256 1

/* The binary Merkle root of dex.ledger.codec (dex/engine/digest.py states
 * it): SHA-256(0x00 + leaf) a leaf, SHA-256(0x01 + left + right) a node, the
 * last node of an odd level paired with itself. `leaves` is a non-empty list.
 * 0 with the root in md; 1 when a leaf is not exactly bytes (the caller
 * hashes through hashlib instead, which takes any bytes-like leaf: no Python
 * code runs here while the list's items are borrowed); -1 with an exception
 * set when out of memory. */
static inline int dex_merkle_root(PyObject *leaves, unsigned char *md)
{
    Py_ssize_t n = PyList_GET_SIZE(leaves);
    unsigned char *level;
    unsigned char node[65];
    const unsigned char zero = 0;
    SHA256_CTX c;
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(leaves, i)))
            return 1;
    }
    level = PyMem_Malloc(32 * (size_t)(n + 1));
    if (level == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *leaf = PyList_GET_ITEM(leaves, i);
        SHA256_Init(&c);
        SHA256_Update(&c, &zero, 1);
        SHA256_Update(&c, PyBytes_AS_STRING(leaf), (size_t)PyBytes_GET_SIZE(leaf));
        SHA256_Final(level + 32 * i, &c);
    }
    node[0] = 1;
    while (n > 1) {
        if (n % 2) {
            memcpy(level + 32 * n, level + 32 * (n - 1), 32);
            n += 1;
        }
        for (i = 0; i < n; i += 2) {
            memcpy(node + 1, level + 32 * i, 64);
            SHA256(node, sizeof node, level + 16 * i); /* parent i/2 at 32 * (i/2), behind what it read */
        }
        n /= 2;
    }
    memcpy(md, level, 32);
    PyMem_Free(level);
    return 0;
}

/* Write v at buf[at:at + 8], little-endian; return at + 8. */
static inline Py_ssize_t dex_put64(unsigned char *buf, Py_ssize_t at, unsigned long long v)
{
    int b;
    for (b = 0; b < 8; b++)
        buf[at + b] = (unsigned char)(v >> (8 * b));
    return at + 8;
}

/* An account's term in the state hash (dex/engine/snapshot.py,
 * _account_term): int(SHA-256(u64 id, i64 free[n], i64 locked[n], u64
 * finished_total, u32 finished, 32-byte big-endian window)), little-endian
 * fields. `free` and `locked` are lists of `assets` ints; `window` is the
 * window sum's 32 bytes, or None for 0. A new int, or NULL with an exception
 * set where struct.pack would refuse the same fields (a value that is not an
 * int or is outside its field, lists of another length). Every item is
 * checked to be an int before it is read, so no Python code runs while the
 * lists' items are borrowed. */
static inline PyObject *dex_account_term(PyObject *id, PyObject *free, PyObject *locked, Py_ssize_t assets,
                                         long long finished_total, Py_ssize_t finished, PyObject *window)
{
    unsigned char stack[512];
    unsigned char md[32];
    Py_ssize_t i, size, at;
    unsigned char *buf = stack;
    PyObject *lists[2] = {free, locked};
    unsigned long long id_value;
    int k;

    if (!PyList_Check(free) || !PyList_Check(locked)) {
        PyErr_SetString(PyExc_TypeError, "an account's balances must be lists");
        return NULL;
    }
    if (PyList_GET_SIZE(free) != assets || PyList_GET_SIZE(locked) != assets) {
        PyErr_SetString(PyExc_ValueError, "an account's balances are not one per asset");
        return NULL;
    }
    if (!PyLong_Check(id)) {
        PyErr_SetString(PyExc_TypeError, "an account id must be an int");
        return NULL;
    }
    id_value = PyLong_AsUnsignedLongLong(id);
    if (id_value == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (finished_total < 0 || finished < 0 || (unsigned long long)finished > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_OverflowError, "an account's dedup window counts are out of range");
        return NULL;
    }
    size = 8 + 16 * assets + 12 + 32;
    if (size > (Py_ssize_t)sizeof stack && (buf = PyMem_Malloc((size_t)size)) == NULL)
        return PyErr_NoMemory();
    at = 0;
    at = dex_put64(buf, at, id_value);
    for (k = 0; k < 2; k++) {
        for (i = 0; i < assets; i++) {
            PyObject *item = PyList_GET_ITEM(lists[k], i);
            long long v;
            if (!PyLong_Check(item)) {
                PyErr_SetString(PyExc_TypeError, "a balance must be an int");
                goto fail;
            }
            v = PyLong_AsLongLong(item); /* an int: no Python code runs */
            if (v == -1 && PyErr_Occurred())
                goto fail;
            at = dex_put64(buf, at, (unsigned long long)v);
        }
    }
    at = dex_put64(buf, at, (unsigned long long)finished_total);
    for (i = 0; i < 4; i++)
        buf[at + i] = (unsigned char)((unsigned long long)finished >> (8 * i));
    at += 4;
    if (window == Py_None) {
        memset(buf + at, 0, 32);
    } else if (PyBytes_CheckExact(window) && PyBytes_GET_SIZE(window) == 32) {
        memcpy(buf + at, PyBytes_AS_STRING(window), 32);
    } else {
        PyErr_SetString(PyExc_ValueError, "the window sum must be 32 bytes or None");
        goto fail;
    }
    SHA256(buf, (size_t)size, md);
    if (buf != stack)
        PyMem_Free(buf);
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(md, 32, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    return _PyLong_FromByteArray(md, 32, 0, 0);
#endif
fail:
    if (buf != stack)
        PyMem_Free(buf);
    return NULL;
}

#else
#define DEX_C_SHA256 0

static inline int dex_merkle_root(PyObject *leaves, unsigned char *md)
{
    (void)leaves; (void)md;
    PyErr_SetString(PyExc_RuntimeError, "dex_merkle_root called in a build without OpenSSL");
    return -1;
}

static inline PyObject *dex_account_term(PyObject *id, PyObject *free, PyObject *locked, Py_ssize_t assets,
                                         long long finished_total, Py_ssize_t finished, PyObject *window)
{
    (void)id; (void)free; (void)locked; (void)assets; (void)finished_total; (void)finished; (void)window;
    PyErr_SetString(PyExc_RuntimeError, "dex_account_term called in a build without OpenSSL");
    return NULL;
}
#endif

static inline int dex_have_c_sha256(void)
{
    return DEX_C_SHA256;
}

#endif

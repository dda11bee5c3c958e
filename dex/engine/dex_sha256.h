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
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP,
 * whose per-call algorithm fetch (a lock and a table lookup) costs more than
 * hashing a leaf. OpenSSL 3's one-shot SHA256() is such an EVP call
 * (EVP_Q_digest, a fetch a hash: py-spy put the fetch at 7% of a block's
 * apply), so every hash here is Init/Update/Final, which go straight to the
 * block function (SHA-NI where the CPU has it). */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#define DEX_C_SHA256 1

static inline void dex_sha256(const void *data, size_t n, unsigned char *md)
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, n);
    SHA256_Final(md, &c);
}

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
            dex_sha256(node, sizeof node, level + 16 * i); /* parent i/2 at 32 * (i/2), behind what it read */
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

/* A non-negative int below 2^256 as 32 big-endian bytes. 0, or -1 with an
 * exception set (not an int, negative, or 2^256 or more). */
static inline int dex_u256_bytes(PyObject *v, unsigned char *out)
{
    if (PyByteArray_CheckExact(v) && PyByteArray_GET_SIZE(v) == 32) { /* a sum kept as its bytes (compiled window sums) */
        memcpy(out, PyByteArray_AS_STRING(v), 32);
        return 0;
    }
    if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "a 256-bit sum must be an int");
        return -1;
    }
    if (_PyLong_Sign(v) == 0) { /* most window sums (no client order ids) */
        memset(out, 0, 32);
        return 0;
    }
#if PY_VERSION_HEX >= 0x030D0000
    {
        Py_ssize_t n = PyLong_AsNativeBytes(v, out, 32, Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER | Py_ASNATIVEBYTES_REJECT_NEGATIVE);
        if (n < 0)
            return -1;
        if (n > 32) {
            PyErr_SetString(PyExc_OverflowError, "a 256-bit sum is 2^256 or more");
            return -1;
        }
        return 0;
    }
#else
    if (_PyLong_Sign(v) < 0) {
        PyErr_SetString(PyExc_OverflowError, "a 256-bit sum is negative");
        return -1;
    }
    return _PyLong_AsByteArray((PyLongObject *)v, out, 32, 0, 0);
#endif
}

static inline PyObject *dex_u256_int(const unsigned char *md)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(md, 32, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    return _PyLong_FromByteArray(md, 32, 0, 0);
#endif
}

/* An account's term in the state hash (dex/engine/snapshot.py,
 * _account_term): SHA-256(u64 id, i64 free[n], i64 locked[n], u64
 * finished_total, u32 finished, 32-byte big-endian window), little-endian
 * fields, into md. `free` and `locked` point at `assets` balances each (the
 * compiled Account's arrays: the caller checked their length); `window` is
 * the window sum, an int below 2^256. 0, or -1 with an exception set where
 * struct.pack would refuse the same fields (an id or window that is not an
 * int or is outside its field, counts out of range). */
static inline int dex_account_md(PyObject *id, const long long *free, const long long *locked, Py_ssize_t assets,
                                 long long finished_total, Py_ssize_t finished, PyObject *window, unsigned char *md)
{
    unsigned char stack[512];
    Py_ssize_t i, size, at;
    unsigned char *buf = stack;
    unsigned long long id_value;

    if (assets < 0) {
        PyErr_SetString(PyExc_ValueError, "an account's balances are not one per asset");
        return -1;
    }
    if (!PyLong_Check(id)) {
        PyErr_SetString(PyExc_TypeError, "an account id must be an int");
        return -1;
    }
    id_value = PyLong_AsUnsignedLongLong(id);
    if (id_value == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (finished_total < 0 || finished < 0 || (unsigned long long)finished > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_OverflowError, "an account's dedup window counts are out of range");
        return -1;
    }
    size = 8 + 16 * assets + 12 + 32;
    if (size > (Py_ssize_t)sizeof stack && (buf = PyMem_Malloc((size_t)size)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    at = 0;
    at = dex_put64(buf, at, id_value);
    for (i = 0; i < assets; i++)
        at = dex_put64(buf, at, (unsigned long long)free[i]);
    for (i = 0; i < assets; i++)
        at = dex_put64(buf, at, (unsigned long long)locked[i]);
    at = dex_put64(buf, at, (unsigned long long)finished_total);
    for (i = 0; i < 4; i++)
        buf[at + i] = (unsigned char)((unsigned long long)finished >> (8 * i));
    at += 4;
    if (dex_u256_bytes(window, buf + at) < 0)
        goto fail;
    dex_sha256(buf, (size_t)size, md);
    if (buf != stack)
        PyMem_Free(buf);
    return 0;
fail:
    if (buf != stack)
        PyMem_Free(buf);
    return -1;
}

/* The term as an int: what snapshot._account_term returns. */
static inline PyObject *dex_account_term(PyObject *id, const long long *free, const long long *locked, Py_ssize_t assets,
                                         long long finished_total, Py_ssize_t finished, PyObject *window)
{
    unsigned char md[32];
    if (dex_account_md(id, free, locked, assets, finished_total, finished, window, md) < 0)
        return NULL;
    return dex_u256_int(md);
}

/* 32-byte big-endian numbers as four u64 limbs, least significant first. */
static inline void dex_u256_load(const unsigned char *b, unsigned long long *limb)
{
    int i, k;
    for (i = 0; i < 4; i++) {
        unsigned long long v = 0;
        for (k = 0; k < 8; k++)
            v = (v << 8) | b[(3 - i) * 8 + k];
        limb[i] = v;
    }
}

static inline void dex_u256_store(const unsigned long long *limb, unsigned char *b)
{
    int i, k;
    for (i = 0; i < 4; i++) {
        for (k = 0; k < 8; k++)
            b[(3 - i) * 8 + k] = (unsigned char)(limb[i] >> (8 * (7 - k)));
    }
}

/* s -= o and s += t mod 2^256, a limb at a time: each step's borrow or carry
 * tested on its own. */
static inline void dex_u256_sub(unsigned long long *s, const unsigned long long *o)
{
    unsigned long long borrow = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned long long d = s[i] - o[i];
        unsigned long long b = s[i] < o[i];
        b += d < borrow;
        s[i] = d - borrow;
        borrow = b;
    }
}

static inline void dex_u256_add(unsigned long long *s, const unsigned long long *t)
{
    unsigned long long carry = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned long long a = s[i] + t[i];
        unsigned long long c = a < t[i];
        a += carry;
        c += a < carry;
        s[i] = a;
        carry = c;
    }
}

/* The state hash's account sum brought up to date for one changed account
 * (snapshot.state_hash): sum = (sum - old + term) mod 2^256, in place,
 * where `sum` is a bytearray of the sum's 32 big-endian bytes, `old` the
 * account's previous term (its 32 big-endian bytes, or an int: 0 before the
 * first) and term its term now, computed as dex_account_term does. Returns
 * the new term's 32 bytes (the account's `digest` in the compiled build:
 * no int made and read back an account), or NULL with an exception set and
 * `sum` unchanged. */
static inline PyObject *dex_account_fold(PyObject *sum, PyObject *old, PyObject *id, const long long *free, const long long *locked,
                                         Py_ssize_t assets, long long finished_total, Py_ssize_t finished, PyObject *window)
{
    unsigned char md[32], old_bytes[32];
    unsigned long long s[4], o[4], t[4];
    if (!PyByteArray_CheckExact(sum) || PyByteArray_GET_SIZE(sum) != 32) {
        PyErr_SetString(PyExc_TypeError, "the account sum must be a bytearray of 32 bytes");
        return NULL;
    }
    if (PyBytes_CheckExact(old) && PyBytes_GET_SIZE(old) == 32)
        memcpy(old_bytes, PyBytes_AS_STRING(old), 32);
    else if (dex_u256_bytes(old, old_bytes) < 0)
        return NULL;
    if (dex_account_md(id, free, locked, assets, finished_total, finished, window, md) < 0)
        return NULL;
    dex_u256_load((const unsigned char *)PyByteArray_AS_STRING(sum), s);
    dex_u256_load(old_bytes, o);
    dex_u256_load(md, t);
    dex_u256_sub(s, o);
    dex_u256_add(s, t);
    dex_u256_store(s, (unsigned char *)PyByteArray_AS_STRING(sum));
    return PyBytes_FromStringAndSize((const char *)md, 32);
}

/* A book's level sum (state hash v2, dex/engine/snapshot.py) brought up to
 * date for one level: sum = (sum - old + term) mod 2^256, in place, where
 * `sum` is a bytearray of the sum's 32 big-endian bytes, `old` the level's
 * previous term (32 big-endian bytes) or None (a new level), and term =
 * SHA-256(u8 side, record) for `record` (the level's 40-byte record) or
 * nothing for None (a removed level). Returns the new term's 32 bytes, or None
 * for a removed level; NULL with an exception set and `sum` unchanged. */
static inline PyObject *dex_level_fold(PyObject *sum, PyObject *old, int side, PyObject *record)
{
    unsigned char md[32], in[1 + 40];
    unsigned long long s[4], o[4], t[4];
    if (!PyByteArray_CheckExact(sum) || PyByteArray_GET_SIZE(sum) != 32) {
        PyErr_SetString(PyExc_TypeError, "the level sum must be a bytearray of 32 bytes");
        return NULL;
    }
    if (old != Py_None && !(PyBytes_CheckExact(old) && PyBytes_GET_SIZE(old) == 32)) {
        PyErr_SetString(PyExc_TypeError, "a level term must be 32 bytes or None");
        return NULL;
    }
    if (record != Py_None && !(PyBytes_CheckExact(record) && PyBytes_GET_SIZE(record) == 40)) {
        PyErr_SetString(PyExc_TypeError, "a level record must be 40 bytes or None");
        return NULL;
    }
    dex_u256_load((const unsigned char *)PyByteArray_AS_STRING(sum), s);
    if (old != Py_None) {
        dex_u256_load((const unsigned char *)PyBytes_AS_STRING(old), o);
        dex_u256_sub(s, o);
    }
    if (record != Py_None) {
        in[0] = (unsigned char)side;
        memcpy(in + 1, PyBytes_AS_STRING(record), 40);
        dex_sha256(in, sizeof in, md);
        dex_u256_load(md, t);
        dex_u256_add(s, t);
    }
    dex_u256_store(s, (unsigned char *)PyByteArray_AS_STRING(sum));
    if (record == Py_None)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)md, 32);
}

/* A running SHA-256 held in a bytearray of sizeof(SHA256_CTX) bytes: a
 * level's `hasher` in the compiled build (dex/engine/snapshot.py,
 * _cache_level_digest), where the pure build keeps a hashlib object. `data`
 * is bytes or a bytearray. */
static inline int dex_sha_data(PyObject *data, const char **p, Py_ssize_t *n)
{
    if (PyByteArray_CheckExact(data)) {
        *p = PyByteArray_AS_STRING(data);
        *n = PyByteArray_GET_SIZE(data);
    } else if (PyBytes_CheckExact(data)) {
        *p = PyBytes_AS_STRING(data);
        *n = PyBytes_GET_SIZE(data);
    } else {
        PyErr_SetString(PyExc_TypeError, "hashed data must be bytes or a bytearray");
        return -1;
    }
    return 0;
}

/* SHA-256 of bytes or a bytearray into md. 0, or -1 with an exception set. */
static inline int dex_sha256_of(PyObject *data, unsigned char *md)
{
    const char *p;
    Py_ssize_t n;
    if (dex_sha_data(data, &p, &n) < 0)
        return -1;
    dex_sha256(p, (size_t)n, md);
    return 0;
}

/* int(SHA-256(data)), big-endian: an order's term in its account's
 * dedup-window sum (snapshot.window_term). */
static inline PyObject *dex_sha256_int(PyObject *data)
{
    unsigned char md[32];
    return dex_sha256_of(data, md) < 0 ? NULL : dex_u256_int(md);
}

/* An account's dedup-window sum, held compiled as a bytearray of its 32
 * big-endian bytes, with int(SHA-256(data)) added (add) or taken out, mod
 * 2^256, in place: no Python int made (snapshot.window_fold). 0, or -1 with
 * an exception set. */
static inline int dex_window_fold(PyObject *sum, PyObject *data, int add)
{
    unsigned char md[32];
    unsigned long long s[4], t[4];
    if (!PyByteArray_CheckExact(sum) || PyByteArray_GET_SIZE(sum) != 32) {
        PyErr_SetString(PyExc_TypeError, "a window sum must be a bytearray of 32 bytes");
        return -1;
    }
    if (dex_sha256_of(data, md) < 0)
        return -1;
    dex_u256_load((const unsigned char *)PyByteArray_AS_STRING(sum), s);
    dex_u256_load(md, t);
    if (add)
        dex_u256_add(s, t);
    else
        dex_u256_sub(s, t);
    dex_u256_store(s, (unsigned char *)PyByteArray_AS_STRING(sum));
    return 0;
}

/* SHA-256(data) as 32 bytes: dex.engine.sha256 (digest.py). */
static inline PyObject *dex_sha256_bytes(PyObject *data)
{
    unsigned char md[32];
    return dex_sha256_of(data, md) < 0 ? NULL : PyBytes_FromStringAndSize((const char *)md, 32);
}

static inline SHA256_CTX *dex_sha_ctx(PyObject *ctx)
{
    if (!PyByteArray_CheckExact(ctx) || PyByteArray_GET_SIZE(ctx) != (Py_ssize_t)sizeof(SHA256_CTX)) {
        PyErr_SetString(PyExc_TypeError, "a running SHA-256 must be a bytearray of its context's size");
        return NULL;
    }
    return (SHA256_CTX *)PyByteArray_AS_STRING(ctx);
}

/* A new running hash fed `data`. */
static inline PyObject *dex_sha_ctx_new(PyObject *data)
{
    const char *p;
    Py_ssize_t n;
    PyObject *ctx;
    if (dex_sha_data(data, &p, &n) < 0)
        return NULL;
    ctx = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)sizeof(SHA256_CTX));
    if (ctx == NULL)
        return NULL;
    SHA256_Init((SHA256_CTX *)PyByteArray_AS_STRING(ctx));
    SHA256_Update((SHA256_CTX *)PyByteArray_AS_STRING(ctx), p, (size_t)n);
    return ctx;
}

/* Feed `data` to the running hash `ctx`. 0, or -1 with an exception set. */
static inline int dex_sha_ctx_update(PyObject *ctx, PyObject *data)
{
    const char *p;
    Py_ssize_t n;
    SHA256_CTX *c = dex_sha_ctx(ctx);
    if (c == NULL || dex_sha_data(data, &p, &n) < 0)
        return -1;
    SHA256_Update(c, p, (size_t)n);
    return 0;
}

/* The digest of what `ctx` was fed so far (32 bytes); `ctx` is left as it
 * was, to be fed more (hashlib's digest() does the same on a copy). */
static inline PyObject *dex_sha_ctx_digest(PyObject *ctx)
{
    SHA256_CTX copy;
    unsigned char md[32];
    SHA256_CTX *c = dex_sha_ctx(ctx);
    if (c == NULL)
        return NULL;
    memcpy(&copy, c, sizeof copy);
    SHA256_Final(md, &copy);
    return PyBytes_FromStringAndSize((const char *)md, 32);
}

/* A book's digest (dex/engine/snapshot.py, _book_digest): SHA-256(symbol,
 * bid records from the last to the first, "|", ask records from the last to
 * the first, "|"). `symbol` is bytes; the records are lists of bytes. Every
 * item is checked before any is read. */
static inline PyObject *dex_book_digest(PyObject *symbol, PyObject *bids, PyObject *asks)
{
    SHA256_CTX c;
    unsigned char md[32];
    PyObject *sides[2] = {bids, asks};
    Py_ssize_t i;
    int k;
    if (!PyBytes_CheckExact(symbol) || !PyList_CheckExact(bids) || !PyList_CheckExact(asks)) {
        PyErr_SetString(PyExc_TypeError, "a book digest takes bytes and two lists");
        return NULL;
    }
    for (k = 0; k < 2; k++) {
        for (i = 0; i < PyList_GET_SIZE(sides[k]); i++) {
            if (!PyBytes_CheckExact(PyList_GET_ITEM(sides[k], i))) {
                PyErr_SetString(PyExc_TypeError, "a level record must be bytes");
                return NULL;
            }
        }
    }
    SHA256_Init(&c);
    SHA256_Update(&c, PyBytes_AS_STRING(symbol), (size_t)PyBytes_GET_SIZE(symbol));
    for (k = 0; k < 2; k++) {
        for (i = PyList_GET_SIZE(sides[k]) - 1; i >= 0; i--) {
            PyObject *record = PyList_GET_ITEM(sides[k], i);
            SHA256_Update(&c, PyBytes_AS_STRING(record), (size_t)PyBytes_GET_SIZE(record));
        }
        SHA256_Update(&c, "|", 1);
    }
    SHA256_Final(md, &c);
    return PyBytes_FromStringAndSize((const char *)md, 32);
}

#else
#define DEX_C_SHA256 0

static inline PyObject *dex_no_openssl(void)
{
    PyErr_SetString(PyExc_RuntimeError, "a C SHA-256 function called in a build without OpenSSL");
    return NULL;
}
static inline PyObject *dex_sha_ctx_new(PyObject *data) { (void)data; return dex_no_openssl(); }
static inline int dex_sha_ctx_update(PyObject *ctx, PyObject *data) { (void)ctx; (void)data; dex_no_openssl(); return -1; }
static inline PyObject *dex_sha_ctx_digest(PyObject *ctx) { (void)ctx; return dex_no_openssl(); }
static inline PyObject *dex_sha256_int(PyObject *data) { (void)data; return dex_no_openssl(); }
static inline int dex_window_fold(PyObject *sum, PyObject *data, int add) { (void)sum; (void)data; (void)add; dex_no_openssl(); return -1; }
static inline PyObject *dex_sha256_bytes(PyObject *data) { (void)data; return dex_no_openssl(); }
static inline PyObject *dex_book_digest(PyObject *symbol, PyObject *bids, PyObject *asks)
{
    (void)symbol; (void)bids; (void)asks;
    return dex_no_openssl();
}

static inline int dex_merkle_root(PyObject *leaves, unsigned char *md)
{
    (void)leaves; (void)md;
    PyErr_SetString(PyExc_RuntimeError, "dex_merkle_root called in a build without OpenSSL");
    return -1;
}

static inline PyObject *dex_account_term(PyObject *id, const long long *free, const long long *locked, Py_ssize_t assets,
                                         long long finished_total, Py_ssize_t finished, PyObject *window)
{
    (void)id; (void)free; (void)locked; (void)assets; (void)finished_total; (void)finished; (void)window;
    PyErr_SetString(PyExc_RuntimeError, "dex_account_term called in a build without OpenSSL");
    return NULL;
}

static inline PyObject *dex_level_fold(PyObject *sum, PyObject *old, int side, PyObject *record)
{
    (void)sum; (void)old; (void)side; (void)record;
    PyErr_SetString(PyExc_RuntimeError, "dex_level_fold called in a build without OpenSSL");
    return NULL;
}
static inline PyObject *dex_account_fold(PyObject *sum, PyObject *old, PyObject *id, const long long *free, const long long *locked,
                                         Py_ssize_t assets, long long finished_total, Py_ssize_t finished, PyObject *window)
{
    (void)sum; (void)old; (void)id; (void)free; (void)locked; (void)assets; (void)finished_total; (void)finished; (void)window;
    PyErr_SetString(PyExc_RuntimeError, "dex_account_fold called in a build without OpenSSL");
    return NULL;
}
#endif

/* A level's part of its book digest's input (snapshot.py, `_record`): its
 * price as a little-endian u64, then its 32-byte digest; the bytes of
 * `struct.pack("<Q", price) + digest`. NULL with an exception set when the
 * digest is not 32 bytes. */
static inline PyObject *dex_level_record(unsigned long long price, PyObject *digest)
{
    PyObject *out;
    if (!PyBytes_CheckExact(digest) || PyBytes_GET_SIZE(digest) != 32) {
        PyErr_SetString(PyExc_TypeError, "a level digest must be 32 bytes");
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, 40);
    if (out == NULL)
        return NULL;
    {
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
        int b;
        for (b = 0; b < 8; b++)
            p[b] = (unsigned char)(price >> (8 * b));
        memcpy(p + 8, PyBytes_AS_STRING(digest), 32);
    }
    return out;
}

/* bisect.bisect_left(keys, key) for a list of ints that fit 64 bits (a
 * book's price keys): the index of the first item >= key, found with C
 * compares. -1 with an exception set when an item read is not such an int. */
static inline Py_ssize_t dex_bisect_left_i64(PyObject *keys, long long key)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        long long v = PyLong_AsLongLong(PyList_GET_ITEM(keys, mid));
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline int dex_have_c_sha256(void)
{
    return DEX_C_SHA256;
}

#endif

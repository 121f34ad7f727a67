/* Bulk hashing for the IMA appraisal: many small digests and PCR replays in one call.
 *
 * The appraisal of a 100,000-entry list computes 100,000 template hashes per bank and extends PCR 10
 * 100,000 times per bank. hashlib costs about half a microsecond of interpreter work per call
 * (object, method, bytes result) around a hash that OpenSSL computes in a tenth of that, so these
 * three functions take a whole batch per call and hash it with libcrypto (the library hashlib uses). No cryptography is implemented here: only the loops.
 *
 *   digests(algo, items, prefix=b"") -> bytes      prefix + H(item), for every item, concatenated
 *   extend(algo, value, data, stride=0, skip=0)    value = H(value || data[k*stride+skip :][:size])
 *   replay(algo, value, items) -> bytes            value = H(value || H(item)), for every item
 *
 * the columns of a chunk of ASCII ima-ng lines (ascii.py's fast reader; no hashing):
 *
 *   ascii_ng_columns(lines, h_end, colon, d_end, head) -> (hashes, inputs, paths, digests) | None
 *
 * and SHA-256 resumable from a saved intermediate state (hashlib can neither export nor import one):
 *
 *   sha256_resume(state, data) -> state            the state after hashing data (state: see below)
 *   sha256_final(state) -> digest                  the SHA-256 of everything the state has hashed
 *
 * A state is implementation-independent: the eight chaining words after the last whole 64-byte
 * block (big-endian, 32 bytes), the byte count hashed (8 bytes, big-endian), then the count mod 64
 * bytes not yet compressed. sha256state.py documents it and holds the reference in Python.
 *
 * The pure-Python reference of each is in bulkhash.py, which tests compare with this module.
 */
#define PY_SSIZE_T_CLEAN
/* The SHA-1 and SHA-2 functions of libcrypto's low-level interface: OpenSSL 3 marks them
 * deprecated in favour of EVP, whose per-digest dispatch costs more than hashing an IMA record
 * (measured: 0.44 us vs 0.28 us per 120-byte SHA-256), which is all this module is for. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

#define MAX_DIGEST 64

/* One bank's hash, computed over the concatenation of two buffers (the second may be empty). */
typedef void (*hash2_fn)(const void *a, size_t na, const void *b, size_t nb, unsigned char *out);

static void
sha1_2(const void *a, size_t na, const void *b, size_t nb, unsigned char *out)
{
    SHA_CTX c;
    SHA1_Init(&c);
    SHA1_Update(&c, a, na);
    if (nb) SHA1_Update(&c, b, nb);
    SHA1_Final(out, &c);
}

static void
sha256_2(const void *a, size_t na, const void *b, size_t nb, unsigned char *out)
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, a, na);
    if (nb) SHA256_Update(&c, b, nb);
    SHA256_Final(out, &c);
}

static void
sha384_2(const void *a, size_t na, const void *b, size_t nb, unsigned char *out)
{
    SHA512_CTX c;
    SHA384_Init(&c);
    SHA384_Update(&c, a, na);
    if (nb) SHA384_Update(&c, b, nb);
    SHA384_Final(out, &c);
}

static void
sha512_2(const void *a, size_t na, const void *b, size_t nb, unsigned char *out)
{
    SHA512_CTX c;
    SHA512_Init(&c);
    SHA512_Update(&c, a, na);
    if (nb) SHA512_Update(&c, b, nb);
    SHA512_Final(out, &c);
}

typedef struct {
    hash2_fn fn;
    Py_ssize_t size;
} hasher;

static int
hasher_open(hasher *h, const char *name)
{
    if (strcmp(name, "sha1") == 0) *h = (hasher){sha1_2, 20};
    else if (strcmp(name, "sha256") == 0) *h = (hasher){sha256_2, 32};
    else if (strcmp(name, "sha384") == 0) *h = (hasher){sha384_2, 48};
    else if (strcmp(name, "sha512") == 0) *h = (hasher){sha512_2, 64};
    else {
        PyErr_Format(PyExc_ValueError, "unknown bank %s", name);
        return -1;
    }
    return 0;
}

static PyObject *
bulk_digests(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"algo", "items", "prefix", NULL};
    const char *name;
    PyObject *items;
    Py_buffer prefix = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sO|y*", kwlist, &name, &items, &prefix)) return NULL;
    PyObject *result = NULL;
    hasher h;
    PyObject *seq = PySequence_Fast(items, "items must be a sequence of bytes");
    if (seq == NULL) goto done;
    if (hasher_open(&h, name) < 0) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t size = h.size;
    Py_ssize_t step = size + prefix.len;
    result = PyBytes_FromStringAndSize(NULL, n * step);
    if (result == NULL) goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    PyObject **objs = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = objs[i];
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "item %zd is not bytes", i);
            Py_CLEAR(result);
            goto done;
        }
        if (prefix.len) memcpy(out, prefix.buf, prefix.len);
        h.fn(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), NULL, 0, out + prefix.len);
        out += step;
    }
done:
    Py_XDECREF(seq);
    if (prefix.obj) PyBuffer_Release(&prefix);
    return result;
}

static PyObject *
bulk_extend(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"algo", "value", "data", "stride", "skip", NULL};
    const char *name;
    Py_buffer value = {0}, data = {0};
    Py_ssize_t stride = 0, skip = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "sy*y*|nn", kwlist, &name, &value, &data, &stride, &skip))
        return NULL;
    PyObject *result = NULL;
    hasher h;
    if (hasher_open(&h, name) < 0) goto done;
    Py_ssize_t size = h.size;
    if (stride == 0) stride = size;
    if (value.len != size || skip < 0 || stride < skip + size || data.len % stride != 0) {
        PyErr_SetString(PyExc_ValueError, "value must be one digest and data whole strides holding one");
        goto done;
    }
    unsigned char pcr[MAX_DIGEST];
    memcpy(pcr, value.buf, size);
    const unsigned char *p = (const unsigned char *)data.buf + skip;
    for (Py_ssize_t k = data.len / stride; k > 0; k--, p += stride) {
        h.fn(pcr, size, p, size, pcr);
    }
    result = PyBytes_FromStringAndSize((const char *)pcr, size);
done:
    PyBuffer_Release(&value);
    PyBuffer_Release(&data);
    return result;
}

static PyObject *
bulk_replay(PyObject *Py_UNUSED(self), PyObject *args)
{
    const char *name;
    Py_buffer value = {0};
    PyObject *items;
    if (!PyArg_ParseTuple(args, "sy*O", &name, &value, &items)) return NULL;
    PyObject *result = NULL;
    hasher h;
    PyObject *seq = PySequence_Fast(items, "items must be a sequence of bytes");
    if (seq == NULL) goto done;
    if (hasher_open(&h, name) < 0) goto done;
    Py_ssize_t size = h.size;
    if (value.len != size) {
        PyErr_SetString(PyExc_ValueError, "value must be one digest of the bank");
        goto done;
    }
    unsigned char pcr[MAX_DIGEST], digest[MAX_DIGEST];
    memcpy(pcr, value.buf, size);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **objs = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = objs[i];
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "item %zd is not bytes", i);
            goto done;
        }
        h.fn(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), NULL, 0, digest);
        h.fn(pcr, size, digest, size, pcr);
    }
    result = PyBytes_FromStringAndSize((const char *)pcr, size);
done:
    Py_XDECREF(seq);
    PyBuffer_Release(&value);
    return result;
}

/* The columns of a chunk of ASCII ima-ng lines (ascii.py's _fast, after it read the layout from the
 * first line): every line "10 " HASH MID DIGEST " " PATH, where MID (first[h_end:colon+1], e.g.
 * " ima-ng sha256:") is the first line's, HASH and DIGEST lowercase hex of its widths. Returns
 * (hashes, inputs, paths, digests) as _fast builds them, or None when any line differs in any way
 * (the caller then reads the chunk line by line, which names the defect). No hashing here. */
static int
lower_hex(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return 1;
}

static unsigned char
nibble(unsigned char c)
{
    return (unsigned char)(c <= '9' ? c - '0' : c - 'a' + 10);
}

static PyObject *
ascii_ng_columns(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *lines;
    Py_ssize_t h_end, colon, d_end;
    Py_buffer head = {0};
    if (!PyArg_ParseTuple(args, "Onnny*", &lines, &h_end, &colon, &d_end, &head)) return NULL;
    PyObject *result = NULL, *inputs = NULL, *paths = NULL, *digests = NULL, *hashes = NULL;
    if (!PyList_Check(lines) || PyList_GET_SIZE(lines) == 0 || h_end < 4 || (h_end - 3) % 2 || colon <= h_end ||
        d_end <= colon + 1 || (d_end - colon - 1) % 2) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(lines), hsize = (h_end - 3) / 2, dsize = (d_end - colon - 1) / 2;
    PyObject *first = PyList_GET_ITEM(lines, 0);
    if (!PyBytes_Check(first) || PyBytes_GET_SIZE(first) <= d_end) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    const char *mid = PyBytes_AS_STRING(first) + h_end;
    Py_ssize_t mid_len = colon + 1 - h_end;
    inputs = PyList_New(n);
    paths = PyList_New(n);
    digests = PyList_New(n);
    hashes = PyBytes_FromStringAndSize(NULL, n * (1 + hsize));
    if (!inputs || !paths || !digests || !hashes) goto done;
    unsigned char *hout = (unsigned char *)PyBytes_AS_STRING(hashes);
    int fits = 1;
    for (Py_ssize_t i = 0; i < n && fits; i++) {
        PyObject *item = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(item)) { fits = 0; break; }
        const unsigned char *l = (const unsigned char *)PyBytes_AS_STRING(item);
        Py_ssize_t len = PyBytes_GET_SIZE(item);
        Py_ssize_t plen = len - d_end - 1;
        if (len <= d_end || l[0] != '1' || l[1] != '0' || l[2] != ' ' || !lower_hex(l + 3, h_end - 3) ||
            memcmp(l + h_end, mid, (size_t)mid_len) != 0 || !lower_hex(l + colon + 1, d_end - colon - 1) ||
            l[d_end] != ' ' || plen + 1 >= 8192) {
            fits = 0;
            break;
        }
        *hout++ = 0x10;
        for (Py_ssize_t k = 0; k < hsize; k++) *hout++ = (unsigned char)(nibble(l[3 + 2 * k]) << 4 | nibble(l[4 + 2 * k]));
        /* inputs: head + digest + LEN4(len(path) + 1) + path + NUL */
        PyObject *in = PyBytes_FromStringAndSize(NULL, head.len + dsize + 4 + plen + 1);
        if (in == NULL) goto done;
        unsigned char *o = (unsigned char *)PyBytes_AS_STRING(in);
        memcpy(o, head.buf, (size_t)head.len);
        o += head.len;
        for (Py_ssize_t k = 0; k < dsize; k++) *o++ = (unsigned char)(nibble(l[colon + 1 + 2 * k]) << 4 | nibble(l[colon + 2 + 2 * k]));
        unsigned long nl = (unsigned long)(plen + 1);
        *o++ = (unsigned char)(nl & 0xff); *o++ = (unsigned char)((nl >> 8) & 0xff);
        *o++ = (unsigned char)((nl >> 16) & 0xff); *o++ = (unsigned char)((nl >> 24) & 0xff);
        memcpy(o, l + d_end + 1, (size_t)plen);
        o[plen] = 0;
        PyList_SET_ITEM(inputs, i, in);
        PyObject *path = PyUnicode_DecodeUTF8((const char *)l + d_end + 1, plen, NULL);
        if (path == NULL) { /* as _fast: not UTF-8, shown with backslash escapes */
            PyErr_Clear();
            path = PyUnicode_DecodeUTF8((const char *)l + d_end + 1, plen, "backslashreplace");
            if (path == NULL) goto done;
        }
        PyList_SET_ITEM(paths, i, path);
        PyObject *digest = PyUnicode_DecodeASCII((const char *)l + colon + 1, d_end - colon - 1, NULL);
        if (digest == NULL) goto done;
        PyList_SET_ITEM(digests, i, digest);
    }
    if (!fits) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    result = PyTuple_Pack(4, hashes, inputs, paths, digests);
done:
    Py_XDECREF(inputs);
    Py_XDECREF(paths);
    Py_XDECREF(digests);
    Py_XDECREF(hashes);
    PyBuffer_Release(&head);
    return result;
}

/* SHA-256 intermediate states, as documented at the top. */
#define STATE_HEAD 40

static int
state_load(SHA256_CTX *c, const unsigned char *s, Py_ssize_t n)
{
    if (n < STATE_HEAD) goto bad;
    unsigned long long total = 0;
    for (int i = 0; i < 8; i++) total = (total << 8) | s[32 + i];
    if (total >> 61 || (Py_ssize_t)(total % SHA256_CBLOCK) != n - STATE_HEAD) goto bad;
    SHA256_Init(c);
    for (int i = 0; i < 8; i++)
        c->h[i] = ((SHA_LONG)s[4 * i] << 24) | ((SHA_LONG)s[4 * i + 1] << 16) | ((SHA_LONG)s[4 * i + 2] << 8) | s[4 * i + 3];
    unsigned long long bits = total << 3;
    c->Nl = (SHA_LONG)(bits & 0xffffffffu);
    c->Nh = (SHA_LONG)(bits >> 32);
    c->num = (unsigned int)(n - STATE_HEAD);
    memcpy(c->data, s + STATE_HEAD, (size_t)c->num); /* libcrypto keeps the pending bytes in order here */
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "not a SHA-256 state (32-byte chaining value, 8-byte count, count mod 64 bytes)");
    return -1;
}

static PyObject *
state_dump(const SHA256_CTX *c)
{
    unsigned long long total = (((unsigned long long)c->Nh << 32) | c->Nl) >> 3;
    PyObject *out = PyBytes_FromStringAndSize(NULL, STATE_HEAD + c->num);
    if (out == NULL) return NULL;
    unsigned char *s = (unsigned char *)PyBytes_AS_STRING(out);
    for (int i = 0; i < 8; i++) {
        s[4 * i] = (unsigned char)(c->h[i] >> 24);
        s[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        s[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        s[4 * i + 3] = (unsigned char)c->h[i];
    }
    for (int i = 0; i < 8; i++) s[32 + i] = (unsigned char)(total >> (56 - 8 * i));
    memcpy(s + STATE_HEAD, c->data, c->num);
    return out;
}

static PyObject *
sha256_resume(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer state = {0}, data = {0};
    if (!PyArg_ParseTuple(args, "y*y*", &state, &data)) return NULL;
    PyObject *result = NULL;
    SHA256_CTX c;
    if (state_load(&c, state.buf, state.len) < 0) goto done;
    if ((unsigned long long)data.len >> 60) {
        PyErr_SetString(PyExc_OverflowError, "too much data for one SHA-256");
        goto done;
    }
    if (data.len > 65536) { /* a whole list after a restart: let other threads run meanwhile */
        Py_BEGIN_ALLOW_THREADS
        SHA256_Update(&c, data.buf, (size_t)data.len);
        Py_END_ALLOW_THREADS
    } else {
        SHA256_Update(&c, data.buf, (size_t)data.len);
    }
    result = state_dump(&c);
done:
    PyBuffer_Release(&state);
    PyBuffer_Release(&data);
    return result;
}

static PyObject *
sha256_final(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer state = {0};
    if (!PyArg_ParseTuple(args, "y*", &state)) return NULL;
    PyObject *result = NULL;
    SHA256_CTX c;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    if (state_load(&c, state.buf, state.len) == 0) {
        SHA256_Final(digest, &c);
        result = PyBytes_FromStringAndSize((const char *)digest, SHA256_DIGEST_LENGTH);
    }
    PyBuffer_Release(&state);
    return result;
}

static PyMethodDef methods[] = {
    {"ascii_ng_columns", ascii_ng_columns, METH_VARARGS,
     "ascii_ng_columns(lines, h_end, colon, d_end, head) -> (hashes, inputs, paths, digests) or None"},
    {"sha256_resume", sha256_resume, METH_VARARGS, "sha256_resume(state, data) -> the SHA-256 state after data"},
    {"sha256_final", sha256_final, METH_VARARGS, "sha256_final(state) -> the SHA-256 digest of a state"},
    {"digests", (PyCFunction)(void (*)(void))bulk_digests, METH_VARARGS | METH_KEYWORDS,
     "digests(algo, items, prefix=b'') -> prefix + H(item) for every item, concatenated"},
    {"extend", (PyCFunction)(void (*)(void))bulk_extend, METH_VARARGS | METH_KEYWORDS,
     "extend(algo, value, data, stride=0, skip=0) -> value extended with every digest in data"},
    {"replay", bulk_replay, METH_VARARGS, "replay(algo, value, items) -> value extended with H(item) of every item"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_bulkhash", "Bulk hashing for the IMA appraisal (see bulkhash.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__bulkhash(void)
{
    return PyModule_Create(&module);
}

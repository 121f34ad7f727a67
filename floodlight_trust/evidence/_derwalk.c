/* The DER walks of a cold DCAP verification, each in one call (x509_der.py says why and holds the
 * pure-Python reference of each; tests compare the two on real certificates and fuzzed DER).
 *
 *   layout(der, crl) -> (tbs, algorithm | None, issuer, subject | None, extensions | None) | None
 *       the parts of a certificate's (crl false) or CRL's DER, sliced, never re-encoded; None when
 *       the structure is not the expected one.
 *   profile(extensions) -> (critical, ca, key_usage, eku, sgx, deferred)
 *       a certificate's Extensions contents: the OIDs marked critical (in order), basicConstraints
 *       cA, the keyUsage BIT STRING contents, the extKeyUsage purposes (a frozenset), the SGX
 *       extension's value, and the message of a malformed basicConstraints / keyUsage /
 *       extKeyUsage (None when they are sound).  ValueError(message, None) for a malformed list,
 *       ValueError(None, oid) for an extension listed twice.
 *   certificate_fields(der) -> (serial, not_before, not_after, signature) | None
 *       a certificate's serialNumber (an int), its validity (aware UTC datetimes) and its signature
 *       value (the BIT STRING's bytes); None when they are not where and what DER puts them (a
 *       UTCTime / GeneralizedTime of whole seconds in Z, a non-empty INTEGER, a BIT STRING
 *       without unused bits): the caller then reads them with cryptography.
 *   crl_fields(der, issuer) -> (tbs, algorithm, signature, this_update, next_update, revoked) | None
 *       a CRL read strictly in the one form Intel publishes (x509_der.crl_fields says which), its
 *       issuer the Name `issuer` byte for byte; None for any other form: the caller then hands
 *       the CRL to cryptography, as before this walk. Whatever it reads, cryptography reads the same.
 *   sgx_extension(value) -> (ppid, components, pce_svn, cpu_svn, pce_id, fmspc, sgx_type)
 *       the SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1).
 *       ValueError(message, offset, is_der_error) when malformed.
 *
 * Every read is bounds-checked against its container; nothing is allocated but the results and
 * the list of entries being walked.
 * The messages are der.tlv's and the reference's, word for word.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int tag;
    Py_ssize_t start, end;
} Tlv;

/* der.tlv: the element at pos within d[:end]. On failure: -1, with *msg set (and the offset). */
static int
tlv(const uint8_t *d, Py_ssize_t pos, Py_ssize_t end, Tlv *out, char *msg, size_t msg_size, Py_ssize_t *offset)
{
    Py_ssize_t at = pos;
    if (pos + 2 > end) {
        snprintf(msg, msg_size, "DER element at offset %zd is cut short", pos);
        *offset = pos;
        return -1;
    }
    int tag = d[pos], first = d[pos + 1];
    if ((tag & 0x1F) == 0x1F) {
        snprintf(msg, msg_size, "DER element at offset %zd: multi-byte tags are not supported", pos);
        *offset = pos;
        return -1;
    }
    pos += 2;
    Py_ssize_t length;
    if (first < 0x80) {
        length = first;
    } else {
        int n = first & 0x7F;
        if (n == 0 || n > 4 || pos + n > end) {
            snprintf(msg, msg_size, "DER element at offset %zd: bad length", at);
            *offset = at;
            return -1;
        }
        length = 0;
        for (int i = 0; i < n; i++) length = (length << 8) | d[pos + i];
        pos += n;
    }
    if (pos + length > end) {
        snprintf(msg, msg_size, "DER element at offset %zd runs %zd bytes past its container", at, pos + length - end);
        *offset = at;
        return -1;
    }
    out->tag = tag;
    out->start = pos;
    out->end = pos + length;
    return 0;
}

#define MSG 160
#define TLV(d, pos, end, out) tlv((d), (pos), (end), (out), msg, sizeof msg, &offset)

static PyObject *
slice(const uint8_t *d, Py_ssize_t start, Py_ssize_t end)
{
    return PyBytes_FromStringAndSize((const char *)d + start, end - start);
}

/* ---------------------------------------------------------------------------------------------- */

static PyObject *
layout(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer buf;
    int crl;
    if (!PyArg_ParseTuple(args, "y*p", &buf, &crl)) return NULL;
    const uint8_t *d = buf.buf;
    Py_ssize_t n = buf.len;
    char msg[MSG];
    Py_ssize_t offset;
    Tlv top, tbs, alg, el, issuer, validity, subject, spki, ext_seq;
    PyObject *result = NULL;
    Py_ssize_t pos, start, end, tbs_end, alg_end, issuer_start, issuer_end, subject_start = 0, subject_end = 0;
    Py_ssize_t ext_start = -1, ext_end = -1;
    int algorithms_agree;

    if (TLV(d, 0, n, &top)) goto none;                  /* Certificate / CertificateList */
    pos = top.start;
    if (TLV(d, pos, n, &tbs)) goto none;                /* tbsCertificate / tbsCertList */
    start = tbs.start;
    tbs_end = tbs.end;
    if (TLV(d, tbs_end, n, &alg)) goto none;            /* the outer signatureAlgorithm */
    alg_end = alg.end;
    if (TLV(d, start, tbs_end, &el)) goto none;
    if (el.tag == (crl ? 0x02 : 0xA0)) start = el.end;  /* optional version */
    if (!crl) {
        if (TLV(d, start, tbs_end, &el)) goto none;     /* serialNumber */
        start = el.end;
    }
    if (TLV(d, start, tbs_end, &el)) goto none;         /* the inner signature algorithm */
    end = el.end;
    algorithms_agree = (end - start == alg_end - tbs_end) && memcmp(d + start, d + tbs_end, end - start) == 0;
    if (TLV(d, end, tbs_end, &issuer)) goto none;
    issuer_start = end;
    issuer_end = issuer.end;
    if (issuer.tag != 0x30) goto none;
    if (!crl) {
        if (TLV(d, issuer_end, tbs_end, &validity)) goto none;
        if (TLV(d, validity.end, tbs_end, &subject)) goto none;
        subject_start = validity.end;
        subject_end = subject.end;
        if (subject.tag != 0x30) goto none;
        if (TLV(d, subject_end, tbs_end, &spki)) goto none;  /* subjectPublicKeyInfo */
        Py_ssize_t at = spki.end;
        while (at < tbs_end) {  /* [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions */
            if (TLV(d, at, tbs_end, &el)) goto none;
            if (el.tag == 0xA3) {
                if (TLV(d, el.start, el.end, &ext_seq)) goto none;
                if (ext_seq.tag != 0x30 || ext_seq.end != el.end) goto none;
                ext_start = ext_seq.start;
                ext_end = ext_seq.end;
            }
            at = el.end;
        }
    }
    {
        PyObject *t = slice(d, pos, tbs_end);
        PyObject *a = algorithms_agree ? slice(d, tbs_end, alg_end) : Py_NewRef(Py_None);
        PyObject *i = slice(d, issuer_start, issuer_end);
        PyObject *s = crl ? Py_NewRef(Py_None) : slice(d, subject_start, subject_end);
        PyObject *x = ext_start >= 0 ? slice(d, ext_start, ext_end) : Py_NewRef(Py_None);
        if (t && a && i && s && x) result = PyTuple_Pack(5, t, a, i, s, x);
        Py_XDECREF(t);
        Py_XDECREF(a);
        Py_XDECREF(i);
        Py_XDECREF(s);
        Py_XDECREF(x);
    }
    PyBuffer_Release(&buf);
    return result;
none:
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------------- */

static int
digits(const uint8_t *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* A UTCTime (RFC 5280: YYMMDDHHMMSSZ, 50-99 are 19xx) or GeneralizedTime (YYYYMMDDHHMMSSZ) as an
 * aware UTC datetime; NULL without an error set when it is neither or not a real date. */
static PyObject *
der_time(const uint8_t *d, const Tlv *t)
{
    const uint8_t *p = d + t->start;
    Py_ssize_t n = t->end - t->start;
    int year, mo, day, h, mi, sec;
    if (t->tag == 0x17 && n == 13 && p[12] == 'Z') {
        if (digits(p, 2, &year)) return NULL;
        year += year >= 50 ? 1900 : 2000;
        p += 2;
    } else if (t->tag == 0x18 && n == 15 && p[14] == 'Z') {
        if (digits(p, 4, &year)) return NULL;
        p += 4;
    } else {
        return NULL;
    }
    if (digits(p, 2, &mo) || digits(p + 2, 2, &day) || digits(p + 4, 2, &h) || digits(p + 6, 2, &mi) ||
        digits(p + 8, 2, &sec))
        return NULL;
    PyObject *value = PyDateTimeAPI->DateTime_FromDateAndTime(year, mo, day, h, mi, sec, 0, PyDateTime_TimeZone_UTC,
                                                              PyDateTimeAPI->DateTimeType);
    if (!value && PyErr_ExceptionMatches(PyExc_ValueError)) PyErr_Clear();  /* month 13, February 30 */
    return value;
}

static PyObject *
certificate_fields(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const uint8_t *d = buf.buf;
    Py_ssize_t n = buf.len, offset, start;
    char msg[MSG];
    Tlv top, tbs, alg, bits, el, serial, validity, t1, t2;
    PyObject *result = NULL, *serial_value = NULL, *not_before = NULL, *not_after = NULL;

    if (TLV(d, 0, n, &top) || TLV(d, top.start, n, &tbs) || TLV(d, tbs.end, n, &alg)) goto none;
    if (TLV(d, alg.end, n, &bits) || bits.tag != 0x03 || bits.end == bits.start || d[bits.start] != 0) goto none;
    start = tbs.start;
    if (TLV(d, start, tbs.end, &el)) goto none;
    if (el.tag == 0xA0) start = el.end;  /* optional version */
    if (TLV(d, start, tbs.end, &serial) || serial.tag != 0x02 || serial.end == serial.start) goto none;
    if (TLV(d, serial.end, tbs.end, &el)) goto none;  /* the inner signature algorithm */
    if (TLV(d, el.end, tbs.end, &el)) goto none;      /* issuer */
    if (TLV(d, el.end, tbs.end, &validity) || validity.tag != 0x30) goto none;
    if (TLV(d, validity.start, validity.end, &t1) || TLV(d, t1.end, validity.end, &t2) || t2.end != validity.end)
        goto none;
    serial_value = _PyLong_FromByteArray(d + serial.start, (size_t)(serial.end - serial.start), 0, 1);
    if (!serial_value) goto done;
    if (!(not_before = der_time(d, &t1))) goto maybe_none;
    if (!(not_after = der_time(d, &t2))) goto maybe_none;
    result = Py_BuildValue("(OOOy#)", serial_value, not_before, not_after, (const char *)d + bits.start + 1,
                           bits.end - bits.start - 1);
    goto done;
maybe_none:
    if (PyErr_Occurred()) goto done;
none:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(serial_value);
    Py_XDECREF(not_before);
    Py_XDECREF(not_after);
    PyBuffer_Release(&buf);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */

static const uint8_t SGX_OID[] = {0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x01, 0x0D, 0x01};  /* 1.2.840.113741.1.13.1 */
static const uint8_t KEY_USAGE[] = {0x55, 0x1D, 0x0F}, BASIC_CONSTRAINTS[] = {0x55, 0x1D, 0x13};
static const uint8_t EXT_KEY_USAGE[] = {0x55, 0x1D, 0x25};

typedef struct {
    Py_ssize_t oid_start, oid_end, value_start, value_end;
    int critical;
} Extension;

static int
oid_is(const uint8_t *d, const Extension *e, const uint8_t *oid, size_t n)
{
    return (size_t)(e->oid_end - e->oid_start) == n && memcmp(d + e->oid_start, oid, n) == 0;
}

static PyObject *
value_error2(PyObject *a, PyObject *b)
{
    if (a && b) {
        PyObject *args = PyTuple_Pack(2, a, b);
        if (args) {
            PyErr_SetObject(PyExc_ValueError, args);
            Py_DECREF(args);
        }
    }
    Py_XDECREF(a);
    Py_XDECREF(b);
    return NULL;
}

/* The DER parts of basicConstraints, keyUsage and extKeyUsage. 0, or -1 with *msg (deferred). */
static int
known_values(const uint8_t *d, const Extension *bc, const Extension *ku, const Extension *eku, int *ca,
             PyObject **key_usage, PyObject **purposes, char *msg, size_t msg_size)
{
    Py_ssize_t offset;
    char inner[MSG];
    Tlv t, b;
    if (bc) {  /* BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPTIONAL } */
        Py_ssize_t base = bc->value_start, len = bc->value_end - bc->value_start;
        const uint8_t *v = d + base;
        if (tlv(v, 0, len, &t, inner, sizeof inner, &offset)) goto der;
        if (t.tag != 0x30 || t.end != len) {
            snprintf(msg, msg_size, "basicConstraints is not one SEQUENCE");
            return -1;
        }
        if (t.start < t.end && v[t.start] == 0x01) {
            if (tlv(v, t.start, t.end, &b, inner, sizeof inner, &offset)) goto der;
            *ca = b.end == b.start + 1 && v[b.start] != 0;
        }
    }
    if (ku) {
        Py_ssize_t len = ku->value_end - ku->value_start;
        const uint8_t *v = d + ku->value_start;
        if (tlv(v, 0, len, &t, inner, sizeof inner, &offset)) goto der;
        if (t.tag != 0x03 || t.end != len || t.end == t.start) {
            snprintf(msg, msg_size, "keyUsage is not one BIT STRING");
            return -1;
        }
        *key_usage = slice(v, t.start, t.end);
        if (!*key_usage) return -2;
    }
    if (eku) {
        Py_ssize_t len = eku->value_end - eku->value_start;
        const uint8_t *v = d + eku->value_start;
        if (tlv(v, 0, len, &t, inner, sizeof inner, &offset)) goto der;
        if (t.tag != 0x30 || t.end != len) {
            snprintf(msg, msg_size, "extKeyUsage is not one SEQUENCE");
            return -1;
        }
        PyObject *set = PyFrozenSet_New(NULL);
        if (!set) return -2;
        *purposes = set;
        Py_ssize_t s = t.start;
        while (s < t.end) {
            if (tlv(v, s, t.end, &b, inner, sizeof inner, &offset)) goto der;
            if (b.tag != 0x06) {
                snprintf(msg, msg_size, "extKeyUsage holds a non-OID");
                return -1;
            }
            PyObject *oid = slice(v, b.start, b.end);
            if (!oid || PySet_Add(set, oid) < 0) {
                Py_XDECREF(oid);
                return -2;
            }
            Py_DECREF(oid);
            s = b.end;
        }
    }
    return 0;
der:
    snprintf(msg, msg_size, "%s", inner);
    return -1;
}

static PyObject *
profile(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const uint8_t *d = buf.buf;
    Py_ssize_t n = buf.len, at = 0, offset;
    char msg[MSG];
    Extension *exts = NULL;
    int count = 0, capacity = 0;
    PyObject *result = NULL;

    while (at < n) {
        Tlv seq, oid, val;
        if (TLV(d, at, n, &seq) || TLV(d, seq.start, seq.end, &oid) || TLV(d, oid.end, seq.end, &val)) {
            PyObject *text = PyUnicode_FromFormat("malformed extensions: %s", msg);
            value_error2(text, Py_NewRef(Py_None));
            goto done;
        }
        int critical = 0;
        if (val.tag == 0x01) {  /* critical BOOLEAN DEFAULT FALSE */
            critical = val.end == val.start + 1 && d[val.start] != 0;
            if (TLV(d, val.end, seq.end, &val)) {
                PyObject *text = PyUnicode_FromFormat("malformed extensions: %s", msg);
                value_error2(text, Py_NewRef(Py_None));
                goto done;
            }
        }
        if (seq.tag != 0x30 || oid.tag != 0x06 || val.tag != 0x04 || val.end != seq.end) {
            PyObject *text = PyUnicode_FromFormat("malformed extension at offset %zd of its extensions", at);
            value_error2(text, Py_NewRef(Py_None));
            goto done;
        }
        Extension e = {oid.start, oid.end, val.start, val.end, critical};
        for (int k = 0; k < count; k++) {
            if (exts[k].oid_end - exts[k].oid_start == e.oid_end - e.oid_start &&
                memcmp(d + exts[k].oid_start, d + e.oid_start, e.oid_end - e.oid_start) == 0) {
                value_error2(Py_NewRef(Py_None), slice(d, e.oid_start, e.oid_end));
                goto done;
            }
        }
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            Extension *more = PyMem_Realloc(exts, (size_t)capacity * sizeof *exts);
            if (!more) {
                PyErr_NoMemory();
                goto done;
            }
            exts = more;
        }
        exts[count++] = e;
        at = seq.end;
    }
    {
        const Extension *bc = NULL, *ku = NULL, *eku = NULL, *sgx = NULL;
        int critical_count = 0;
        for (int k = 0; k < count; k++) {
            critical_count += exts[k].critical;
            if (oid_is(d, &exts[k], BASIC_CONSTRAINTS, sizeof BASIC_CONSTRAINTS)) bc = &exts[k];
            else if (oid_is(d, &exts[k], KEY_USAGE, sizeof KEY_USAGE)) ku = &exts[k];
            else if (oid_is(d, &exts[k], EXT_KEY_USAGE, sizeof EXT_KEY_USAGE)) eku = &exts[k];
            else if (oid_is(d, &exts[k], SGX_OID, sizeof SGX_OID)) sgx = &exts[k];
        }
        PyObject *critical = PyTuple_New(critical_count);
        if (!critical) goto done;
        for (int k = 0, j = 0; k < count; k++) {
            if (!exts[k].critical) continue;
            PyObject *o = slice(d, exts[k].oid_start, exts[k].oid_end);
            if (!o) {
                Py_DECREF(critical);
                goto done;
            }
            PyTuple_SET_ITEM(critical, j++, o);
        }
        int ca = 0;
        PyObject *key_usage = NULL, *purposes = NULL, *deferred = NULL;
        char dmsg[MSG];
        int rc = known_values(d, bc, ku, eku, &ca, &key_usage, &purposes, dmsg, sizeof dmsg);
        if (rc == -2) {
            Py_DECREF(critical);
            Py_XDECREF(key_usage);
            Py_XDECREF(purposes);
            goto done;
        }
        if (rc == -1) {  /* the values are not used: the caller raises the message */
            Py_CLEAR(key_usage);
            Py_CLEAR(purposes);
            ca = 0;
            deferred = PyUnicode_FromString(dmsg);
            if (!deferred) {
                Py_DECREF(critical);
                goto done;
            }
        }
        PyObject *sgx_value = sgx ? slice(d, sgx->value_start, sgx->value_end) : Py_NewRef(Py_None);
        if (sgx_value) {
            result = Py_BuildValue("(NONNNN)", critical, ca ? Py_True : Py_False,
                                   key_usage ? key_usage : Py_NewRef(Py_None),
                                   purposes ? purposes : Py_NewRef(Py_None), sgx_value,
                                   deferred ? deferred : Py_NewRef(Py_None));
        } else {
            Py_DECREF(critical);
            Py_XDECREF(key_usage);
            Py_XDECREF(purposes);
            Py_XDECREF(deferred);
        }
    }
done:
    PyMem_Free(exts);
    PyBuffer_Release(&buf);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t oid_start, oid_end, value_start, value_end;
} Pair;

typedef struct {
    Pair *items;
    int count, capacity;
} Pairs;

static PyObject *
sgx_error(const char *message, Py_ssize_t offset, int der)
{
    PyObject *args = Py_BuildValue("(snO)", message, offset, der ? Py_True : Py_False);
    if (args) {
        PyErr_SetObject(PyExc_ValueError, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* sgx_quote._pairs: SEQUENCE OF SEQUENCE { OID, value }. 0, or -1 with the error set. */
static int
pairs(const uint8_t *d, Py_ssize_t start, Py_ssize_t end, Pairs *out)
{
    char msg[MSG];
    Py_ssize_t offset;
    while (start < end) {
        Tlv seq, oid, val;
        if (TLV(d, start, end, &seq)) goto der;
        if (seq.tag != 0x30) {
            sgx_error("SGX extension entry is not a SEQUENCE", seq.start, 0);
            return -1;
        }
        if (TLV(d, seq.start, seq.end, &oid)) goto der;
        if (oid.tag != 0x06 || oid.end >= seq.end) {
            sgx_error("SGX extension entry is not (OID, value)", seq.start, 0);
            return -1;
        }
        if (TLV(d, oid.end, seq.end, &val)) goto der;
        if (val.end != seq.end) {
            sgx_error("SGX extension entry is not (OID, value)", seq.start, 0);
            return -1;
        }
        if (out->count == out->capacity) {  /* Intel's has 7 entries, its TCB 18 */
            out->capacity = out->capacity ? 2 * out->capacity : 32;
            Pair *more = PyMem_Realloc(out->items, (size_t)out->capacity * sizeof *more);
            if (!more) {
                PyErr_NoMemory();
                return -1;
            }
            out->items = more;
        }
        out->items[out->count++] = (Pair){oid.start, oid.end, val.start, val.end};
        start = seq.end;
    }
    return 0;
der:
    sgx_error(msg, offset, 1);
    return -1;
}

/* The last pair whose OID is the SGX OID followed by the arcs `tail` (as the reference's dict). */
static const Pair *
find(const uint8_t *d, const Pairs *pairs, const uint8_t *tail, size_t tail_len)
{
    const Pair *p = pairs->items;
    for (int k = pairs->count - 1; k >= 0; k--) {
        Py_ssize_t len = p[k].oid_end - p[k].oid_start;
        if ((size_t)len == sizeof SGX_OID + tail_len && memcmp(d + p[k].oid_start, SGX_OID, sizeof SGX_OID) == 0 &&
            memcmp(d + p[k].oid_start + sizeof SGX_OID, tail, tail_len) == 0)
            return &p[k];
    }
    return NULL;
}

static PyObject *
unsigned_int(const uint8_t *d, const Pair *p)
{
    return _PyLong_FromByteArray(d + p->value_start, (size_t)(p->value_end - p->value_start), 0, 0);
}

static PyObject *
sgx_extension(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const uint8_t *d = buf.buf;
    Py_ssize_t n = buf.len, offset;
    char msg[MSG];
    PyObject *result = NULL, *comps = NULL;
    Pairs top = {NULL, 0, 0}, tcb = {NULL, 0, 0};
    Tlv seq;
    static const uint8_t T1[] = {1}, T2[] = {2}, T3[] = {3}, T4[] = {4}, T5[] = {5}, T17[] = {17}, T18[] = {18};

    if (TLV(d, 0, n, &seq)) {
        sgx_error(msg, offset, 1);
        goto done;
    }
    if (seq.tag != 0x30) {
        sgx_error("SGX extension is not a SEQUENCE", 0, 0);
        goto done;
    }
    if (pairs(d, seq.start, seq.end, &top) < 0) goto done;
    const Pair *tcb_pair = find(d, &top, T2, 1);
    if (!tcb_pair) {
        sgx_error("SGX extension lacks the TCB (1.2.840.113741.1.13.1.2)", 0, 0);
        goto done;
    }
    if (pairs(d, tcb_pair->value_start, tcb_pair->value_end, &tcb) < 0) goto done;
    const Pair *parts[16];
    for (int i = 0; i < 16; i++) {
        uint8_t tail[2] = {2, (uint8_t)(i + 1)};
        if (!(parts[i] = find(d, &tcb, tail, 2))) goto lacks;
    }
    uint8_t t17[2] = {2, T17[0]}, t18[2] = {2, T18[0]};
    const Pair *ppid = find(d, &top, T1, 1), *pce_svn = find(d, &tcb, t17, 2);
    const Pair *cpu_svn = find(d, &tcb, t18, 2), *pce_id = find(d, &top, T3, 1);
    const Pair *fmspc = find(d, &top, T4, 1), *sgx_type = find(d, &top, T5, 1);
    if (!ppid || !pce_svn || !cpu_svn || !pce_id || !fmspc || !sgx_type) goto lacks;
    if (!(comps = PyTuple_New(16))) goto done;
    for (int i = 0; i < 16; i++) {
        PyObject *v = unsigned_int(d, parts[i]);
        if (!v) goto done;
        PyTuple_SET_ITEM(comps, i, v);
    }
    result = Py_BuildValue("(NNNNNNN)", slice(d, ppid->value_start, ppid->value_end), comps,
                           unsigned_int(d, pce_svn), slice(d, cpu_svn->value_start, cpu_svn->value_end),
                           slice(d, pce_id->value_start, pce_id->value_end),
                           slice(d, fmspc->value_start, fmspc->value_end), unsigned_int(d, sgx_type));
    comps = NULL;  /* "N" took it */
    goto done;
lacks:
    sgx_error("SGX extension lacks a required field", 0, 0);
done:
    Py_XDECREF(comps);
    PyMem_Free(top.items);
    PyMem_Free(tcb.items);
    PyBuffer_Release(&buf);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */
/* crl_fields: a CRL read strictly, or None (then cryptography reads it, as before this walk). */

/* One DER element at pos within d[:end], strictly: a one-byte tag, the shortest length form (no
 * indefinite length, no long form below 128, no leading zero length byte, at most 3 length bytes),
 * contents inside the container. 0, or -1 (no message: the caller then hands the CRL on). */
static int
strict_tlv(const uint8_t *d, Py_ssize_t pos, Py_ssize_t end, Tlv *out)
{
    if (pos + 2 > end || (d[pos] & 0x1F) == 0x1F) return -1;
    int first = d[pos + 1];
    Py_ssize_t length, at = pos + 2;
    if (first < 0x80) {
        length = first;
    } else {
        int n = first & 0x7F;
        if (n == 0 || n > 3 || at + n > end || d[at] == 0) return -1;
        length = 0;
        for (int i = 0; i < n; i++) length = (length << 8) | d[at + i];
        if (length < 0x80 || (n == 3 && length < 0x10000) || (n == 2 && length < 0x100)) return -1;
        at += n;
    }
    if (length > end - at) return -1;
    out->tag = d[pos];
    out->start = at;
    out->end = at + length;
    return 0;
}

/* A non-negative INTEGER in its shortest form (as a serial number or a CRL number). */
static int
strict_unsigned(const uint8_t *d, const Tlv *t)
{
    Py_ssize_t n = t->end - t->start;
    if (t->tag != 0x02 || n < 1 || (d[t->start] & 0x80)) return 0;
    return n == 1 || d[t->start] != 0 || (d[t->start + 1] & 0x80);
}

/* A UTCTime YYMMDDHHMMSSZ of a real date, as an aware UTC datetime; NULL (no error set) otherwise. */
static PyObject *
strict_utc_time(const uint8_t *d, const Tlv *t)
{
    if (t->tag != 0x17 || t->end - t->start != 13) return NULL;
    return der_time(d, t);
}

static const uint8_t ECDSA_ALGORITHM[] = {0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03};
static const uint8_t CRL_NUMBER[] = {0x06, 0x03, 0x55, 0x1D, 0x14}, AKI[] = {0x06, 0x03, 0x55, 0x1D, 0x23};

/* The CRL's extensions [0] EXPLICIT, of which only CRL Number (a non-negative INTEGER) and
 * Authority Key Identifier (a keyIdentifier alone) are read: each at most once, not critical or
 * critical TRUE, the value exactly one element of the form cryptography reads. 0, or -1 for
 * anything else (another extension, a value in another form). */
static int
crl_extensions(const uint8_t *d, const Tlv *explicit)
{
    Tlv list, ext, oid, val, inner, key_id;
    int seen_number = 0, seen_aki = 0;
    if (explicit->tag != 0xA0 || strict_tlv(d, explicit->start, explicit->end, &list) || list.tag != 0x30 ||
        list.end != explicit->end || list.start == list.end)
        return -1;
    for (Py_ssize_t at = list.start; at < list.end; at = ext.end) {
        if (strict_tlv(d, at, list.end, &ext) || ext.tag != 0x30) return -1;
        if (strict_tlv(d, ext.start, ext.end, &oid) || strict_tlv(d, oid.end, ext.end, &val)) return -1;
        if (val.tag == 0x01) {  /* critical: only TRUE is DER (FALSE, the default, is left out) */
            if (val.end - val.start != 1 || d[val.start] != 0xFF || strict_tlv(d, val.end, ext.end, &val)) return -1;
        }
        if (val.tag != 0x04 || val.end != ext.end) return -1;
        if (strict_tlv(d, val.start, val.end, &inner) || inner.end != val.end) return -1;
        const uint8_t *o = d + ext.start;  /* the OID element, tag and length included */
        size_t o_len = (size_t)(oid.end - ext.start);
        if (o_len == sizeof CRL_NUMBER && memcmp(o, CRL_NUMBER, sizeof CRL_NUMBER) == 0) {
            if (seen_number++ || !strict_unsigned(d, &inner)) return -1;
        } else if (o_len == sizeof AKI && memcmp(o, AKI, sizeof AKI) == 0) {
            if (seen_aki++ || inner.tag != 0x30 || strict_tlv(d, inner.start, inner.end, &key_id) ||
                key_id.tag != 0x80 || key_id.end != inner.end || key_id.start == key_id.end)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static PyObject *
crl_fields(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer buf, want;
    if (!PyArg_ParseTuple(args, "y*y*", &buf, &want)) return NULL;
    const uint8_t *d = buf.buf;
    Py_ssize_t n = buf.len, alg_start, issuer_start, at;
    Tlv top, tbs, el, alg, issuer, t1, t2, outer, bits, list, entry, serial, when;
    PyObject *result = NULL, *this_update = NULL, *next_update = NULL, *revoked = NULL;

    if (strict_tlv(d, 0, n, &top) || top.tag != 0x30 || top.end != n) goto none;
    if (strict_tlv(d, top.start, n, &tbs) || tbs.tag != 0x30) goto none;
    if (strict_tlv(d, tbs.start, tbs.end, &el) || el.tag != 0x02 || el.end - el.start != 1 || d[el.start] != 1)
        goto none;  /* version v2 */
    alg_start = el.end;  /* ecdsa-with-SHA256/384/512 without parameters (RFC 5758) */
    if (strict_tlv(d, alg_start, tbs.end, &alg) || alg.end - alg_start != (Py_ssize_t)sizeof ECDSA_ALGORITHM + 1 ||
        memcmp(d + alg_start, ECDSA_ALGORITHM, sizeof ECDSA_ALGORITHM) != 0 || d[alg.end - 1] < 2 ||
        d[alg.end - 1] > 4)
        goto none;
    issuer_start = alg.end;  /* the issuer: the expected Name, byte for byte */
    if (strict_tlv(d, issuer_start, tbs.end, &issuer) || issuer.end - issuer_start != want.len ||
        memcmp(d + issuer_start, want.buf, (size_t)want.len) != 0)
        goto none;
    if (strict_tlv(d, issuer.end, tbs.end, &t1) || strict_tlv(d, t1.end, tbs.end, &t2)) goto none;
    if (!(this_update = strict_utc_time(d, &t1)) || !(next_update = strict_utc_time(d, &t2))) goto maybe_none;
    at = t2.end;
    if (!(revoked = PyFrozenSet_New(NULL))) goto done;
    if (at < tbs.end && d[at] == 0x30) {  /* revokedCertificates, not empty; entries without extensions */
        if (strict_tlv(d, at, tbs.end, &list) || list.start == list.end) goto none;
        for (Py_ssize_t e = list.start; e < list.end; e = entry.end) {
            if (strict_tlv(d, e, list.end, &entry) || entry.tag != 0x30) goto none;
            if (strict_tlv(d, entry.start, entry.end, &serial) || !strict_unsigned(d, &serial)) goto none;
            if (serial.end - serial.start == 1 && d[serial.start] == 0) goto none;  /* 0: RFC 5280 wants positive */
            if (strict_tlv(d, serial.end, entry.end, &when) || when.end != entry.end) goto none;
            PyObject *date = strict_utc_time(d, &when);  /* read (and checked) by cryptography's parse */
            if (!date) goto maybe_none;
            Py_DECREF(date);
            PyObject *value = _PyLong_FromByteArray(d + serial.start, (size_t)(serial.end - serial.start), 0, 0);
            if (!value) goto done;
            int rc = PySet_Add(revoked, value);
            Py_DECREF(value);
            if (rc < 0) goto done;
        }
        at = list.end;
    }
    if (at < tbs.end) {  /* crlExtensions, the last element */
        if (strict_tlv(d, at, tbs.end, &el) || el.end != tbs.end || crl_extensions(d, &el)) goto none;
    }
    /* The outer signatureAlgorithm, the inner one byte for byte; the signature, a BIT STRING
     * without unused bits; nothing after it. */
    if (strict_tlv(d, tbs.end, n, &outer) || outer.end - tbs.end != alg.end - alg_start ||
        memcmp(d + tbs.end, d + alg_start, (size_t)(alg.end - alg_start)) != 0)
        goto none;
    if (strict_tlv(d, outer.end, n, &bits) || bits.tag != 0x03 || bits.end != n || bits.end == bits.start ||
        d[bits.start] != 0)
        goto none;
    result = Py_BuildValue("(y#y#y#OOO)", (const char *)d + top.start, tbs.end - top.start,
                           (const char *)d + alg_start, alg.end - alg_start, (const char *)d + bits.start + 1,
                           bits.end - bits.start - 1, this_update, next_update, revoked);
    goto done;
maybe_none:
    if (PyErr_Occurred()) goto done;
none:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(this_update);
    Py_XDECREF(next_update);
    Py_XDECREF(revoked);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&want);
    return result;
}

static PyMethodDef methods[] = {
    {"layout", layout, METH_VARARGS, "layout(der, crl) -> (tbs, algorithm, issuer, subject, extensions) or None"},
    {"profile", profile, METH_VARARGS, "profile(extensions) -> (critical, ca, key_usage, eku, sgx, deferred)"},
    {"certificate_fields", certificate_fields, METH_VARARGS,
     "certificate_fields(der) -> (serial, not_before, not_after, signature) or None"},
    {"crl_fields", crl_fields, METH_VARARGS,
     "crl_fields(der, issuer) -> (tbs, algorithm, signature, this_update, next_update, revoked) or None"},
    {"sgx_extension", sgx_extension, METH_VARARGS,
     "sgx_extension(value) -> (ppid, components, pce_svn, cpu_svn, pce_id, fmspc, sgx_type)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_derwalk", "The DER walks of a cold DCAP verification (see x509_der.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__derwalk(void)
{
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    return PyModule_Create(&module);
}

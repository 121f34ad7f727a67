/* The TCB levels of a TCB info and of a QE identity, read from their decoded JSON in one call
 * (collateral.py says why and holds the references, _tcb_levels_py and _qe_levels_py; tests
 * compare them on real and damaged collateral).
 *
 *   tcb_levels(levels, v3, level_type) -> tuple of level_type(components, pce_svn, status,
 *                                                             advisory_ids, tcb_date)
 *   qe_levels(levels, level_type) -> tuple of level_type(isv_svn, status, advisory_ids)
 *
 * ``levels`` is the decoded ``tcbLevels`` list (dicts, lists, str, int, float, bool, None: what a
 * JSON reader gives); ``level_type`` a tuple subclass (collateral.TcbLevel). Every level is
 * checked as the reference checks it, in the same order, with the same messages:
 * ValueError(message) for the first level that is not sound.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *key_tcb, *key_components, *key_svn, *key_status, *key_status_v2, *key_pcesvn, *key_advisories,
    *key_date, *v2_keys[16];

static PyObject *
fail(Py_ssize_t i, const char *what)
{
    PyErr_Format(PyExc_ValueError, "TCB info tcbLevels[%zd]: %s", i, what);
    return NULL;
}

/* A JSON integer (int or bool, as the reference's {int, bool} type set), as an int; NULL if not. */
static PyObject *
json_int(PyObject *v)
{
    if (PyBool_Check(v)) return PyLong_FromLong(v == Py_True);
    if (PyLong_CheckExact(v)) return Py_NewRef(v);
    return NULL;
}

/* The 16 component SVNs of a version-3 level's "sgxtcbcomponents" (a list), or NULL (no error set
 * when they are malformed: the caller reports it). */
static PyObject *
v3_components(PyObject *comps_raw, int *malformed)
{
    *malformed = 1;
    if (PyList_GET_SIZE(comps_raw) != 16) {
        /* the reference reads every item's svn first: a non-object item is the same message */
        return NULL;
    }
    PyObject *comps = PyTuple_New(16);
    if (!comps) {
        *malformed = 0;
        return NULL;
    }
    for (Py_ssize_t k = 0; k < 16; k++) {
        PyObject *c = PyList_GET_ITEM(comps_raw, k);
        PyObject *svn = PyDict_CheckExact(c) ? PyDict_GetItemWithError(c, key_svn) : NULL;
        PyObject *value = svn ? json_int(svn) : NULL;
        if (!value) {
            Py_DECREF(comps);
            if (PyErr_Occurred()) *malformed = 0;
            return NULL;
        }
        PyTuple_SET_ITEM(comps, k, value);
    }
    *malformed = 0;
    return comps;
}

static PyObject *
v2_components(PyObject *tcb, Py_ssize_t i)
{
    PyObject *comps = PyTuple_New(16);
    if (!comps) return NULL;
    for (Py_ssize_t k = 0; k < 16; k++) {
        PyObject *v = PyDict_GetItemWithError(tcb, v2_keys[k]);
        if (!v || !PyLong_Check(v) || PyBool_Check(v)) {
            Py_DECREF(comps);
            if (PyErr_Occurred()) return NULL;
            PyErr_Format(PyExc_ValueError, "TCB info tcbLevels[%zd]: field '%U' is missing or not a int", i, v2_keys[k]);
            return NULL;
        }
        PyTuple_SET_ITEM(comps, k, PyNumber_Long(v));
        if (!PyTuple_GET_ITEM(comps, k)) {
            Py_DECREF(comps);
            return NULL;
        }
    }
    return comps;
}

/* A level's advisoryIDs (a true JSON value): a list of strings, as a tuple. */
static PyObject *
advisories(PyObject *ids)
{
    if (PyList_CheckExact(ids)) {
        Py_ssize_t n = PyList_GET_SIZE(ids), k;
        for (k = 0; k < n && PyUnicode_Check(PyList_GET_ITEM(ids, k)); k++) {
        }
        if (k == n) return PyList_AsTuple(ids);
    }
    PyObject *text = PyObject_Str(ids);
    if (!text) return NULL;
    PyObject *head = PyUnicode_Substring(text, 0, 40);
    Py_DECREF(text);
    if (!head) return NULL;
    PyErr_Format(PyExc_ValueError, "advisoryIDs is not a list of strings: %R", head);
    Py_DECREF(head);
    return NULL;
}

static PyObject *
level(PyObject *lv, Py_ssize_t i, int v3, PyObject *level_type)
{
    PyObject *tcb = PyDict_CheckExact(lv) ? PyDict_GetItemWithError(lv, key_tcb) : NULL;
    if (!tcb || !PyDict_CheckExact(tcb)) return PyErr_Occurred() ? NULL : fail(i, "missing 'tcb'");
    PyObject *comps;
    if (v3) {
        PyObject *comps_raw = PyDict_GetItemWithError(tcb, key_components);
        if (!comps_raw || !PyList_CheckExact(comps_raw))
            return PyErr_Occurred() ? NULL : fail(i, "field 'sgxtcbcomponents' is missing or not a list");
        int malformed;
        comps = v3_components(comps_raw, &malformed);
        if (!comps) return malformed ? fail(i, "sgxtcbcomponents must be 16 objects with an integer svn") : NULL;
    } else {
        comps = v2_components(tcb, i);
        if (!comps) return NULL;
    }
    PyObject *result = NULL, *ids_tuple = NULL;
    PyObject *status = PyDict_GetItemWithError(lv, key_status);  /* lv.get("tcbStatus") or lv.get("status") */
    if (!status && PyErr_Occurred()) goto done;
    int truth = status ? PyObject_IsTrue(status) : 0;
    if (truth < 0) goto done;
    if (!truth) {
        status = PyDict_GetItemWithError(lv, key_status_v2);
        if (!status && PyErr_Occurred()) goto done;
    }
    if (!status || !PyUnicode_CheckExact(status)) {
        fail(i, "missing tcbStatus");
        goto done;
    }
    PyObject *pce_svn = PyDict_GetItemWithError(tcb, key_pcesvn);
    if (!pce_svn || !PyLong_CheckExact(pce_svn)) {
        if (!PyErr_Occurred()) fail(i, "field 'pcesvn' is missing or not a int");
        goto done;
    }
    PyObject *ids = PyDict_GetItemWithError(lv, key_advisories), *date = PyDict_GetItemWithError(lv, key_date);
    if (PyErr_Occurred()) goto done;
    truth = ids ? PyObject_IsTrue(ids) : 0;
    if (truth < 0) goto done;
    ids_tuple = truth ? advisories(ids) : PyTuple_New(0);
    if (!ids_tuple) goto done;
    if (date && date != Py_None && !PyUnicode_CheckExact(date)) {
        fail(i, "field 'tcbDate' is not a string");
        goto done;
    }
    PyObject *fields = PyTuple_Pack(5, comps, pce_svn, status, ids_tuple, date ? date : Py_None);
    if (!fields) goto done;
    PyObject *args = PyTuple_Pack(1, fields);
    Py_DECREF(fields);
    if (!args) goto done;
    result = PyTuple_Type.tp_new((PyTypeObject *)level_type, args, NULL);  /* tuple.__new__(level_type, fields) */
    Py_DECREF(args);
done:
    Py_DECREF(comps);
    Py_XDECREF(ids_tuple);
    return result;
}

/* One level read by `read`, for each item of `levels`, into a tuple (the loop tcb_levels and qe_levels
   share). `v3` is passed through to `read`. */
typedef PyObject *(*level_reader)(PyObject *lv, Py_ssize_t i, int v3, PyObject *level_type);

static PyObject *
map_levels(PyObject *levels, int v3, PyObject *level_type, level_reader read)
{
    if (!PyType_IsSubtype((PyTypeObject *)level_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "level_type must be a tuple subclass");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(levels);
    PyObject *out = PyTuple_New(n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lv = PyList_GET_ITEM(levels, i);
        Py_INCREF(lv);
        PyObject *one = read(lv, i, v3, level_type);
        Py_DECREF(lv);
        if (!one) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, one);
    }
    return out;
}

static PyObject *
tcb_levels(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *levels, *level_type;
    int v3;
    if (!PyArg_ParseTuple(args, "O!pO!", &PyList_Type, &levels, &v3, &PyType_Type, &level_type)) return NULL;
    return map_levels(levels, v3, level_type, level);
}

/* ---------------------------------------------------------------------------------------------- */
/* qe_levels: a QE identity's levels, as collateral._qe_levels_py reads them. */

static PyObject *key_isvsvn;

static PyObject *
qe_fail(Py_ssize_t i, const char *what)
{
    PyErr_Format(PyExc_ValueError, "QE identity tcbLevels[%zd]: %s", i, what);
    return NULL;
}

static PyObject *
qe_level(PyObject *lv, Py_ssize_t i, int Py_UNUSED(v3), PyObject *level_type)
{
    PyObject *tcb = PyDict_CheckExact(lv) ? PyDict_GetItemWithError(lv, key_tcb) : NULL;
    if (!tcb || !PyDict_CheckExact(tcb)) return PyErr_Occurred() ? NULL : qe_fail(i, "missing 'tcb'");
    PyObject *isv_svn = PyDict_GetItemWithError(tcb, key_isvsvn);
    if (!isv_svn && PyErr_Occurred()) return NULL;
    PyObject *status = PyDict_GetItemWithError(lv, key_status);
    if (!status && PyErr_Occurred()) return NULL;
    if (!isv_svn || !PyLong_CheckExact(isv_svn)) return qe_fail(i, "field 'isvsvn' is missing or not a int");
    if (!status || !PyUnicode_CheckExact(status)) return qe_fail(i, "field 'tcbStatus' is missing or not a str");
    PyObject *ids = PyDict_GetItemWithError(lv, key_advisories);
    if (!ids && PyErr_Occurred()) return NULL;
    int truth = ids ? PyObject_IsTrue(ids) : 0;
    if (truth < 0) return NULL;
    PyObject *ids_tuple = truth ? advisories(ids) : PyTuple_New(0);
    if (!ids_tuple) return NULL;
    PyObject *fields = PyTuple_Pack(3, isv_svn, status, ids_tuple);
    Py_DECREF(ids_tuple);
    if (!fields) return NULL;
    PyObject *args = PyTuple_Pack(1, fields);
    Py_DECREF(fields);
    if (!args) return NULL;
    PyObject *result = PyTuple_Type.tp_new((PyTypeObject *)level_type, args, NULL);
    Py_DECREF(args);
    return result;
}

static PyObject *
qe_levels(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *levels, *level_type;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &levels, &PyType_Type, &level_type)) return NULL;
    return map_levels(levels, 0, level_type, qe_level);
}

static PyMethodDef methods[] = {
    {"tcb_levels", tcb_levels, METH_VARARGS, "tcb_levels(levels, v3, level_type) -> tuple of level_type"},
    {"qe_levels", qe_levels, METH_VARARGS, "qe_levels(levels, level_type) -> tuple of level_type"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tcblevels", "The TCB levels of a TCB info and a QE identity in one call (see collateral.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__tcblevels(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } keys[] = {{&key_tcb, "tcb"},           {&key_components, "sgxtcbcomponents"}, {&key_svn, "svn"},
                {&key_status, "tcbStatus"},  {&key_status_v2, "status"},           {&key_pcesvn, "pcesvn"},
                {&key_advisories, "advisoryIDs"}, {&key_date, "tcbDate"}, {&key_isvsvn, "isvsvn"}};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (!(*keys[k].slot = PyUnicode_InternFromString(keys[k].text))) return NULL;
    for (int k = 0; k < 16; k++)
        if (!(v2_keys[k] = PyUnicode_FromFormat("sgxtcbcomp%02dsvn", k + 1))) return NULL;
    return PyModule_Create(&module);
}

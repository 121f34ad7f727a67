/* Instances of frozen slots dataclasses built in one call (frozen.py says why and holds the
 * reference: the class itself; tests compare the two on every class the verifier builds so).
 *
 *   Builder(cls, names) -> builder;  builder(*values) -> an instance of cls
 *
 * ``names``: the class's fields in order, each a slot of the class (a member descriptor in its
 * own __dict__). A call takes exactly one value per field and stores each in its slot, as the
 * generated __init__ does with object.__setattr__ per field, without a Python call per field.
 * frozen.py makes a Builder only for a class whose __init__ does nothing else (no __post_init__,
 * no field excluded from __init__, no default the caller does not pass).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t n;
    PyMemberDef **members;
    vectorcallfunc vectorcall;
} Builder;

static PyObject *
builder_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Builder *b = (Builder *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        PyErr_Format(PyExc_TypeError, "%s builder takes positional values only", b->cls->tp_name);
        return NULL;
    }
    if (nargs != b->n) {
        PyErr_Format(PyExc_TypeError, "%s builder takes %zd values, %zd given", b->cls->tp_name, b->n, nargs);
        return NULL;
    }
    PyObject *obj = b->cls->tp_alloc(b->cls, 0);
    if (!obj) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (PyMember_SetOne((char *)obj, b->members[i], args[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

static void
builder_dealloc(PyObject *self)
{
    Builder *b = (Builder *)self;
    PyObject_GC_UnTrack(self);
    Py_CLEAR(b->cls);
    PyMem_Free(b->members);
    PyObject_GC_Del(self);
}

static int
builder_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((Builder *)self)->cls);
    return 0;
}

static PyObject *
builder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *names;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Builder(cls, names) takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &names)) return NULL;
    PyTypeObject *t = (PyTypeObject *)cls;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyMemberDef **members = PyMem_Calloc((size_t)(n ? n : 1), sizeof *members);
    if (!members) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *descr = PyUnicode_Check(name) ? PyDict_GetItemWithError(t->tp_dict, name) : NULL;
        if (!descr || !Py_IS_TYPE(descr, &PyMemberDescr_Type) || PyDescr_TYPE(descr) != t ||
            ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX ||
            (((PyMemberDescrObject *)descr)->d_member->flags & READONLY)) {
            PyMem_Free(members);
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%R is not a slot of %s", name, t->tp_name);
            return NULL;
        }
        members[i] = ((PyMemberDescrObject *)descr)->d_member;
    }
    Builder *b = PyObject_GC_New(Builder, type);
    if (!b) {
        PyMem_Free(members);
        return NULL;
    }
    b->cls = (PyTypeObject *)Py_NewRef(cls);
    b->n = n;
    b->members = members;
    b->vectorcall = builder_call;
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "floodlight_trust.evidence._frozen.Builder",
    .tp_basicsize = sizeof(Builder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Builder(cls, names): builder(*values) is an instance of cls with those field values.",
    .tp_new = builder_new,
    .tp_dealloc = builder_dealloc,
    .tp_traverse = builder_traverse,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Builder, vectorcall),
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_frozen", "Frozen slots dataclass instances built in one call (see frozen.py).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__frozen(void)
{
    if (PyType_Ready(&BuilderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Builder", (PyObject *)&BuilderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

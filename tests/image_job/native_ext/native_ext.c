/* The smallest C extension: add(a, b). Built from source by the job's requirements.txt. */
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "native_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_native_ext(void) { return PyModule_Create(&module); }

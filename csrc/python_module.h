// The Python side of a native op library: an importable, empty module.
//
// Importing opentad.ops._<name> loads the shared library, whose static
// TORCH_LIBRARY_FRAGMENT blocks register the ops as torch.ops.opentad.<op>.
// Going through torch.library instead of pybind11 keeps the binding files
// cheap to compile (no <torch/extension.h>).
#pragma once

#include <Python.h>

#define OPENTAD_CAT_(a, b) a##b
#define OPENTAD_CAT(a, b) OPENTAD_CAT_(a, b)
#define OPENTAD_STR_(a) #a
#define OPENTAD_STR(a) OPENTAD_STR_(a)

#define OPENTAD_PYTHON_MODULE(doc)                                                                  \
  PyMODINIT_FUNC OPENTAD_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) {                                 \
    static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, OPENTAD_STR(TORCH_EXTENSION_NAME), doc, \
                                     -1, nullptr};                                                  \
    return PyModule_Create(&module_def);                                                            \
  }

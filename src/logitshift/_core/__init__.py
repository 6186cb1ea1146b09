"""The base layer: errors and validation, numpy reference math, numbers in units of powers of two, and the numba kernels."""

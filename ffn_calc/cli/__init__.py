"""The command line: parse, call the Python API, hand the result to one `emit()`."""

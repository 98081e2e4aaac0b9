"""The one compiled part: the Postfix block scanner (exporter/parsers/_postfix_scan.c).

It is optional: where it cannot be built (no C compiler or Python headers), the install still succeeds
and the package counts Postfix logs with its pure-Python path, which gives the same counts, slower.
Everything else about the package is declared in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "exporter.parsers._postfix_scan",
            ["exporter/parsers/_postfix_scan.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)

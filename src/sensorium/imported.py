"""Classes named by an import path in a config ("mypackage.module:LeNet"), for the learning framework.

A config that names a class runs that package's code when it is loaded, as OpenCLIP's model
configs and MultiBench's modules do: train only configs you trust. The module is imported with
the usual search path (an installed package, or the current folder).
"""
from __future__ import annotations

import re
from importlib import import_module

from .errors import ConfigError

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_import_path(name: str) -> bool:
    return ":" in name


def load_object(path: str, field: str):
    """The object at "module.sub:Attribute.inner"; a clear ConfigError naming `field` otherwise."""
    if not _PATH.match(path):
        raise ConfigError(f"{field}: {path!r} is not an import path like 'mypackage.module:ClassName'")
    module_name, attribute = path.split(":", 1)
    try:
        found = import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{field}: cannot import {module_name!r} ({error})") from error
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"{field}: {module_name!r} has no {attribute!r}") from None
    return found

"""Packages: the core ``gridgeo`` and the folders ``api/``, ``maps/`` and ``console/``, which stay at
the top of the repository (the layers a reader meets first) but install as ``gridgeo.api``,
``gridgeo.maps`` and ``gridgeo.console``: one top-level name in site-packages. Everything else is
in pyproject.toml."""

from setuptools import find_packages, setup

LAYERS = ("api", "maps", "console")

packages = find_packages(include=["gridgeo", "gridgeo.*"])
for layer in LAYERS:
    packages += [f"gridgeo.{name}" for name in find_packages(include=[layer, f"{layer}.*"])]

setup(packages=packages, package_dir={f"gridgeo.{layer}": layer for layer in LAYERS})

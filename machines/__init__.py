"""The state machine specs (``*.yaml``), installed as the package ``runtime.specs``.

pyproject.toml maps ``runtime.specs`` onto this folder, so a wheel carries the specs inside the
package and ``runtime.machines`` finds them with ``importlib.resources``. This file makes the
folder a regular package, which editable installs (``pip install -e .``) need to map it.
"""

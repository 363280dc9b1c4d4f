"""Test support shared by every test directory: stand-ins for third parties and data factories.

Importable as `tests.support` from `tests/`, `services/*/tests` and `libs/*/tests`, because
pytest puts the repository root on `sys.path` (`pythonpath = ["."]` in pyproject.toml). The
fixtures that start and stop these stand-ins are in the root `conftest.py`; the mail server is
`tripline_devstack.DevMailServer`, because `make dev` runs it too.
"""

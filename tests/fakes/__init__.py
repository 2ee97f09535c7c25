"""Fake WhatsApp gateways for the tests: real HTTP servers on 127.0.0.1.

Importable as ``fakes`` because tests/conftest.py puts the tests directory on ``sys.path``
(pytest's default ``prepend`` import mode).
"""

"""The sans-IO core: bytes and values in, bytes and values out.

Nothing under p2p.core may import trio, sqlite, sockets or read the clock or the
OS random source on its own: `now` and randomness are passed in by the caller
(tests/test_core_purity.py enforces the imports).
"""

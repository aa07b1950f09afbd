"""The admin API: the daemon's local HTTP face (server) and the `p2p` command's client.

spec/14-admin-api.md describes it; openapi.json is its machine-readable form.
"""

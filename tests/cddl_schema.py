"""The combined CDDL schema of spec/cddl, for tests that validate CBOR against it.

All spec/cddl/*.cddl files form one schema (spec/README.md). Validation uses the
cddl-verifier package and requires core deterministic encoding, because every CBOR
value p2p publishes must be deterministic.
"""

import functools
import pathlib

import cddl_verifier

ROOT = pathlib.Path(__file__).resolve().parent.parent


@functools.cache
def schema() -> cddl_verifier.Validator:
    files = sorted((ROOT / "spec" / "cddl").glob("*.cddl"))
    return cddl_verifier.Validator("".join(f.read_text() + "\n" for f in files))


def check(rule: str, data: bytes) -> list[str]:
    """Problems found validating `data` against `rule`; empty when it conforms."""
    result = schema().validate(data, rule, require_deterministic=True)
    return [] if result.valid else [d.message for d in result.diagnostics]

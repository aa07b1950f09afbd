"""Problem Report 2.0 (DIDComm v2.1 §"Problem Reports"), carrying p2p error codes.

A problem code is `<sorter>.<scope>.<descriptor>...`; p2p emits
`e.p.<DIDComm descriptor>.<p2p error code>`, e.g. `e.p.msg.invalid-field` or
`e.p.trust.crypto.decryption-failed`, so a DIDComm peer that only knows the standard
descriptors still understands the class of fault, and a p2p peer reads our exact code
from the last token. spec/11-core-protocols.md §11.4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidField, MissingField, RemoteError
from ..message import Message
from . import DIDCOMM_DOC_URI, _body

PROTOCOL = f"{DIDCOMM_DOC_URI}/report-problem/2.0"
PROBLEM_REPORT_TYPE = PROTOCOL + "/problem-report"

MAX_CODE_CHARS = 128
MAX_COMMENT_CHARS = 1024
MAX_ARGS = 16
MAX_ARG_CHARS = 1024
MAX_DETAIL_CHARS = 256  # what we put into args: enough to name the field, not an essay

_TOKEN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_CODE_RE = re.compile(rf"[ew]\.{_TOKEN}(?:\.{_TOKEN})+")

# p2p error code -> DIDComm descriptor (DIDComm v2.1 table "descriptor tokens"). The
# choice follows DIDComm's own examples: an invalid key, a signature or a decryption
# failure is `trust.crypto`; an unknown or mismatched sender is `trust`; bytes that did
# not arrive in a usable form are `xfer`; expiry is `req.time`.
DESCRIPTORS: dict[str, str] = {
    **dict.fromkeys(("too-large", "truncated", "trailing-data", "malformed-cbor", "malformed-delivery-frame",
                     "unknown-frame-kind", "frame-too-large", "malformed-frame", "transport-decrypt-failed",
                     "handshake-failed", "unsupported-protocol"), "xfer"),
    **dict.fromkeys(("invalid-did", "invalid-endpoint"), "did"),
    **dict.fromkeys(("invalid-key", "malformed-envelope", "unsupported-algorithm", "wrong-recipient",
                     "decryption-failed", "bad-signature"), "trust.crypto"),
    **dict.fromkeys(("unknown-sender", "sender-mismatch", "bad-endorsement", "agreement-mismatch"), "trust"),
    **dict.fromkeys(("invalid-message", "missing-field", "invalid-field", "unknown-critical-field",
                     "unsupported-message-type", "invalid-invitation"), "msg"),
    **dict.fromkeys(("message-expired", "clock-skew", "invitation-expired"), "req.time"),
    **dict.fromkeys(("unknown-invitation", "invitation-used", "unexpected-message", "relationship-revoked",
                     "unsolicited-notification", "rate-limited", "agreement-required"), "req"),
    "internal-error": "me",
}

# DIDComm's comment for each descriptor; ours is "<that> (<code>): {1}", fixed per code
# as DIDComm requires, with the situation in args[0].
_COMMENTS = {
    "xfer": "Unable to transport data.",
    "did": "DID is unusable.",
    "trust": "Failed to achieve required trust.",
    "trust.crypto": "Cryptographic operation failed.",
    "msg": "Bad message.",
    "req": "Circumstances don't satisfy requirements.",
    "req.time": "Failed to satisfy timing constraints.",
    "me": "Internal error.",
}


def problem_code(error_code: str, *, sorter: str = "e", scope: str = "p") -> str:
    """`e.p.<descriptor>.<error_code>`; codes without an entry count as `msg`."""
    return f"{sorter}.{scope}.{DESCRIPTORS.get(error_code, 'msg')}.{error_code}"


def comment_for(error_code: str) -> str:
    return f"{_COMMENTS[DESCRIPTORS.get(error_code, 'msg')]} ({error_code}): {{1}}"


@dataclass(frozen=True, slots=True)
class ProblemReport:
    id: str
    code: str
    pthid: str
    comment: str | None = None
    args: tuple = ()
    escalate_to: str | None = None
    ack: tuple[str, ...] | None = None

    @property
    def sorter(self) -> str:
        return self.code.split(".", 1)[0]

    @property
    def error_code(self) -> str:
        """The most specific token: for p2p peers, the p2p error code."""
        return self.code.rsplit(".", 1)[-1]


def report(error: RemoteError | str, *, pthid: str, id: str, frm: str, to: str, now: int,
           offending_id: str | None = None, detail: str | None = None) -> Message:
    """A problem report about thread `pthid`; `offending_id` (the message that caused
    it) goes into `ack`, as DIDComm recommends."""
    code = error if isinstance(error, str) else error.code
    if detail is None and not isinstance(error, str):
        detail = error.detail
    body: dict[str, Any] = {"code": problem_code(code), "comment": comment_for(code)}
    if detail:
        body["args"] = [detail[:MAX_DETAIL_CHARS]]
    return Message(id=id, type=PROBLEM_REPORT_TYPE, body=body, frm=frm, to=(to,), pthid=pthid, created_time=now,
                   ack=(offending_id,) if offending_id else None)


def parse(msg: Message) -> ProblemReport:
    if msg.pthid is None:
        raise MissingField("pthid: a problem report names the thread it is about")
    code = _body.text(msg.body, "code", limit=MAX_CODE_CHARS, required=True)
    if not _CODE_RE.fullmatch(code):
        raise InvalidField("body.code: not a problem code (sorter.scope.descriptor...)")
    comment = _body.text(msg.body, "comment", limit=MAX_COMMENT_CHARS)
    args = _body.array(msg.body, "args", limit=MAX_ARGS) or []
    for arg in args:
        if not (arg is None or type(arg) in (bool, int) or (type(arg) is str and len(arg) <= MAX_ARG_CHARS)):
            raise InvalidField(f"body.args: items are text (at most {MAX_ARG_CHARS}), integers, booleans or null")
    escalate_to = _body.text(msg.body, "escalate_to", limit=MAX_COMMENT_CHARS)
    return ProblemReport(id=msg.id, code=code, pthid=msg.pthid, comment=comment, args=tuple(args),
                         escalate_to=escalate_to, ack=msg.ack)


def render(problem: ProblemReport) -> str:
    """The comment with args interpolated as DIDComm says: {n} -> args[n-1], missing -> '?',
    extra args appended comma-separated."""
    text = problem.comment or problem.code
    used: set[int] = set()

    def sub(m: re.Match) -> str:
        n = int(m.group(1))
        used.add(n)
        value = problem.args[n - 1] if 0 < n <= len(problem.args) else None
        return "?" if value is None else str(value)

    out = re.sub(r"\{(\d{1,2})\}", sub, text)
    extra = [str(a) for i, a in enumerate(problem.args, start=1) if i not in used]
    return out + (", " + ", ".join(extra) if extra else "")

"""Just enough DER to read a certificate's validity dates, with no dependency.

When a chain does not verify, Python's `ssl` only hands back the certificate's raw DER
bytes; reading ``notBefore`` and ``notAfter`` from them means walking a few TLVs:
Certificate -> TBSCertificate -> [version] serial signature issuer Validity.
"""

from __future__ import annotations

import calendar
import re

__all__ = ["CertificateError", "validity"]


class CertificateError(ValueError):
    """The bytes are not a DER certificate this reader understands."""


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `offset`."""
    if offset + 2 > len(data):
        raise CertificateError("truncated certificate")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or offset + size > len(data):
            raise CertificateError("bad length in certificate")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    end = offset + length
    if end > len(data):
        raise CertificateError("truncated certificate")
    return tag, offset, end


_UTC_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_GENERALIZED_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z")


def _moment(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii", "replace")
    if tag == 0x17 and (found := _UTC_TIME.fullmatch(text)):
        year = int(found.group(1))
        parts = [1900 + year if year >= 50 else 2000 + year]  # RFC 5280's two-digit years
    elif tag == 0x18 and (found := _GENERALIZED_TIME.fullmatch(text)):
        parts = [int(found.group(1))]
    else:
        raise CertificateError(f"unreadable certificate time {text!r}")
    parts += [int(g) for g in found.groups()[1:6]]
    return float(calendar.timegm((*parts, 0, 0, 0)))


def validity(der: bytes) -> tuple[float, float]:
    """``(not_before, not_after)`` of a DER certificate, as epoch seconds."""
    _, cert_start, _ = _tlv(der, 0)
    _, position, _ = _tlv(der, cert_start)  # TBSCertificate
    tag, _, end = _tlv(der, position)
    if tag == 0xA0:  # [0] version, present from v2 on
        position = end
    for expected in (0x02, 0x30, 0x30):  # serialNumber, signature, issuer
        tag, _, end = _tlv(der, position)
        if tag != expected:
            raise CertificateError(f"unexpected tag {tag:#04x} in TBSCertificate")
        position = end
    tag, start, _ = _tlv(der, position)
    if tag != 0x30:
        raise CertificateError("no Validity in TBSCertificate")
    before_tag, before_start, before_end = _tlv(der, start)
    after_tag, after_start, after_end = _tlv(der, before_end)
    return (
        _moment(before_tag, der[before_start:before_end]),
        _moment(after_tag, der[after_start:after_end]),
    )

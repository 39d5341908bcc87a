"""How refusals read in logs and test output: ``RequestError`` and ``Disconnect`` as text."""

from __future__ import annotations

from protocol.errors import CloseCode, Disconnect, ErrorCode, RequestError


def test_a_request_error_reads_with_its_code_message_and_id():
    err = RequestError(ErrorCode.BAD_REQUEST, "from must be below 3", 7)
    assert str(err) == "bad_request: from must be below 3 (id=7)"
    assert repr(err) == "RequestError('bad_request', 'from must be below 3', id=7)"
    anonymous = RequestError("rate_limited", "slow down")
    assert str(anonymous) == "rate_limited: slow down"
    assert repr(anonymous) == "RequestError('rate_limited', 'slow down', id=None)"


def test_a_disconnect_reads_with_its_number_name_and_reason():
    bye = Disconnect(4404, "no such exam")
    assert bye.code is CloseCode.NO_EXAM
    assert str(bye) == "4404 NO_EXAM: no such exam"
    assert repr(bye) == "Disconnect(4404, 'no such exam')"

"""The work-score stream's decoder: what it stores per item, and what it dead-letters."""

from __future__ import annotations

import orjson
import pytest

from evaluation.adapters.work_scores import decode_item
from unionhub_contracts import DecodeError, DecodeErrorCode


def _record(scored_at: str, score: float = 87.5) -> bytes:
    data = {"item_id": "slab-1", "worker_id": "w-1", "post_id": "p-1", "score": score, "scored_at": scored_at}
    event = {"specversion": "1.0", "id": "ws-1", "source": "mill", "type": "work.scored", "data": data}
    return orjson.dumps(event)


def test_an_item_is_stored_with_its_month_in_shanghai_and_its_score_in_thousandths() -> None:
    # 16:30 UTC on 31 May is 00:30 on 1 June in Shanghai.
    assert decode_item(_record("2018-05-31T16:30:00Z"), None) == ("slab-1", "2018-06", "p-1", "w-1", 87_500)
    assert decode_item(_record("2018-06-01T00:30:00+08:00"), None)[1] == "2018-06"


def test_an_instant_with_no_month_in_shanghai_is_dead_lettered_not_a_failing_batch() -> None:
    # Valid by the contract, yet before year 1 once converted: counting it would fail its
    # whole batch, again and again.
    with pytest.raises(DecodeError) as raised:
        decode_item(_record("0001-01-01T00:00:00+14:00"), None)
    assert raised.value.code is DecodeErrorCode.INVALID_DATA

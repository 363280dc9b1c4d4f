"""Fast tests of the job registry's ID rules: one job ID per piece of work, never shared."""

from __future__ import annotations

import uuid

from tripline_common.messaging import DELIVER_WEBHOOK, PROCESS_BATCH


def test_a_batch_has_one_job_id_whether_a_producer_holds_its_id_as_uuid_or_text() -> None:
    # Ingest holds a UUID, the sweeper reads text back from a row: one ID, so one run.
    batch_id = uuid.uuid4()

    assert PROCESS_BATCH.job_id(batch_id) == PROCESS_BATCH.job_id(str(batch_id))
    assert PROCESS_BATCH.job_id(batch_id) == f"{PROCESS_BATCH.name}:{batch_id}"


def test_a_batch_and_a_webhook_delivery_never_share_a_job_id() -> None:
    same = uuid.uuid4()

    assert PROCESS_BATCH.job_id(same) != DELIVER_WEBHOOK.job_id(same)
    assert DELIVER_WEBHOOK.job_id(same) == f"{DELIVER_WEBHOOK.name}:{same}"

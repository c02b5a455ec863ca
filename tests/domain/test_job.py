"""The job's id is the key to its page: anyone who has the check run's Details link may open it."""

from app.domain.job import new_job_id


def test_job_ids_carry_128_random_bits():
    ids = {new_job_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids)
    # Each hex digit is random: no position is fixed (uuid4's version nibble was).
    assert all(len({i[p] for i in ids}) == 16 for p in range(32))

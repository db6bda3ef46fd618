"""`runPolicy.suspend` -> the child Job's `spec.suspend`, without fighting Kueue.

Without a queue the operator owns `suspend` both ways. With `queueName`, Kueue owns it: the Job is
created suspended and Kueue unsuspends it on admission; the operator only ever suspends it (a user's
`suspend: true`), and leaves resuming to Kueue's admission.
"""

from __future__ import annotations


def desired_job_suspend(spec_suspend: bool, queue_name: str | None, job_suspended: bool) -> bool | None:
    """The value to patch into the child Job's `spec.suspend`, or None to leave it as it is."""
    if spec_suspend:
        return None if job_suspended else True
    if queue_name:
        return None
    return False if job_suspended else None

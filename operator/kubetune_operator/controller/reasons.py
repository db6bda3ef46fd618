"""Condition reasons and event reasons, as named constants (kubeflow/jobset convention)."""

from __future__ import annotations

from typing import Final

from kubetune_operator.api.contract import Reason

# Condition types.
CREATED: Final = "Created"
RUNNING: Final = "Running"
RESTARTING: Final = "Restarting"
SUSPENDED: Final = "Suspended"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
READY: Final = "Ready"
# kstatus (sigs.k8s.io/cli-utils/pkg/kstatus) "abnormal-true" conditions, read by Flux, Argo CD, kpt:
# Reconciling -> InProgress, Stalled -> Failed, neither (with observedGeneration current) -> Current.
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
WAITING: Final = "Waiting"

# Failure reasons (the `reason` of the Failed condition).
ERROR: Final = "Error"
UNSCHEDULABLE: Final = "Unschedulable"
IMAGE_PULL_BACK_OFF: Final = "ImagePullBackOff"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
PENDING_TIMEOUT: Final = "PendingTimeout"
NODE_LOST: Final = "NodeLost"
DISRUPTED: Final = "Disrupted"
INVALID_SPEC: Final = Reason.INVALID_SPEC.value
MISSING_SECRET: Final = "MissingSecret"
STORAGE_UNREACHABLE: Final = Reason.STORAGE_UNREACHABLE.value
OUT_OF_MEMORY: Final = Reason.OUT_OF_MEMORY.value
OUTPUT_IN_USE: Final = Reason.OUTPUT_IN_USE.value
INSUFFICIENT_MEMORY: Final = Reason.INSUFFICIENT_MEMORY.value
DIGEST_MISMATCH: Final = Reason.DIGEST_MISMATCH.value
CHILD_CONFLICT: Final = "ChildConflict"
CHILD_REJECTED: Final = "ChildRejected"
RESTARTS_EXHAUSTED: Final = "RestartsExhausted"
MODEL_FAILED: Final = "ModelFailed"
MODEL_NOT_FOUND: Final = "ModelNotFound"
POLICY_VIOLATION: Final = "PolicyViolation"

# Other reasons.
CHILDREN_CREATED: Final = "ChildrenCreated"
PODS_PENDING: Final = "PodsPending"
ALL_WORKERS_RUNNING: Final = "AllWorkersRunning"
SUSPENDED_BY_USER: Final = "SuspendedByUser"
WAITING_FOR_ADMISSION: Final = "WaitingForAdmission"
RESUMED: Final = "Resumed"
COMPLETED: Final = "Completed"
MODEL_NOT_READY: Final = "ModelNotReady"
NOT_FINISHED: Final = "NotFinished"
TTL_EXPIRED: Final = "TTLExpired"

# A pod failure with one of these reasons consumes the restart budget; the others fail the job at once
# because a restart cannot fix them (a missing Secret stays missing, a bad image stays bad).
RETRIABLE_FAILURES: Final = frozenset({ERROR, NODE_LOST})

# Reasons a workload reports itself in its termination message (kubetune_operator.api.contract) to fail
# fast: every one of them fails the job at once.
WORKLOAD_REPORTED_FAILURES: Final = frozenset(reason.value for reason in Reason)

"""kubetune.io/v1alpha1 API models: the single source of the CRDs and of docs/api.md.

What lives here: the pydantic models (`base`, `common`, `finetunejob`, `evaljob`) and what is derived
from them (`crd`: the CRDs, `reference`: docs/api.md, `manifest`: parsing with errors naming the field,
`naming`: what a job's name must satisfy); and the code every component shares because each may import
this package and no other: `contract` (how pods report how they ended), `memory` (the memory estimate),
`logs` (one logging setup), `timestamps` (RFC 3339 times).

What must not: kopf, the Kubernetes client, torch or any ML library, and any other kubetune layer
(controller, CLI, trainer, evaluator, dev tools): the trainer and evaluator pods import this package.
Importing it imports neither kopf nor torch (a unit test checks it; an import-linter contract too).
"""

from kubetune_operator.api.base import API_VERSION, GROUP, VERSION
from kubetune_operator.api.common import (
    Condition,
    DatasetSpec,
    JobStatus,
    ModelSource,
    ObjectReference,
    PodTemplate,
    ResourcesSpec,
    RunPolicy,
    SplitSpec,
    StorageSpec,
    TaskSpec,
    TemplateSpec,
)
from kubetune_operator.api.evaljob import (
    EvalDatasetSpec,
    EvalJob,
    EvalJobSpec,
    EvalJobStatus,
    EvalModelSource,
    EvalProgress,
    EvalResults,
    FewshotSpec,
    GenerationSpec,
    JudgeSpec,
    Metric,
    Thresholds,
)
from kubetune_operator.api.finetunejob import (
    CheckpointRef,
    CheckpointSpec,
    DistributedSpec,
    FineTuneJob,
    FineTuneJobSpec,
    FineTuneJobStatus,
    FineTuneResourcesSpec,
    Hyperparameters,
    LoraSpec,
    OutputRef,
    OutputSpec,
    Progress,
)
from kubetune_operator.api.manifest import Manifest, ManifestError, load_manifest, parse_manifest

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "CheckpointRef",
    "CheckpointSpec",
    "Condition",
    "DatasetSpec",
    "DistributedSpec",
    "EvalDatasetSpec",
    "EvalJob",
    "EvalJobSpec",
    "EvalJobStatus",
    "EvalModelSource",
    "EvalProgress",
    "EvalResults",
    "FewshotSpec",
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "FineTuneResourcesSpec",
    "GenerationSpec",
    "Hyperparameters",
    "JobStatus",
    "JudgeSpec",
    "LoraSpec",
    "Manifest",
    "ManifestError",
    "Metric",
    "ModelSource",
    "ObjectReference",
    "OutputRef",
    "OutputSpec",
    "PodTemplate",
    "Progress",
    "ResourcesSpec",
    "RunPolicy",
    "SplitSpec",
    "StorageSpec",
    "TaskSpec",
    "TemplateSpec",
    "Thresholds",
    "load_manifest",
    "parse_manifest",
]

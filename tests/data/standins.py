"""Stand-ins for downloadable-only release files: a registered spec pointed at stand-in bytes."""

from __future__ import annotations

import hashlib

from recforge.data.dataset_spec import DatasetSpec, FileSpec
from recforge.data.registry import get_dataset


def spec_with(name: str, files: dict[str, bytes]) -> DatasetSpec:
    """The registered spec of ``name`` with these files known by the stand-ins' sha256 (same
    names, URLs and loader), so the real loaders read the stand-ins through the registry."""
    spec = get_dataset(name)
    new = [
        FileSpec(filename=f.filename, url=f.url,
                 sha256=hashlib.sha256(files[f.filename]).hexdigest())
        if f.filename in files else f
        for f in spec.files
    ]
    return spec.model_copy(update={"files": tuple(new)})

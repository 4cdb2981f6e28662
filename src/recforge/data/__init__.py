"""Datasets, the Interactions type, filters, the dataset registry and splits."""

from recforge.data.download import ChecksumError, DownloadError, fetch_file
from recforge.data.filters import FilterReport
from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError, from_pandas, from_polars, read_csv, read_parquet
from recforge.data.registry import (
    DatasetSpec,
    DatasetUnavailableError,
    UnknownDatasetError,
    dataset_info,
    fetch,
    get_dataset,
    list_datasets,
    load_dataset,
)
from recforge.data.split import Split

__all__ = [
    "ChecksumError",
    "DataFormatError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "DownloadError",
    "FilterReport",
    "Interactions",
    "Split",
    "UnknownDatasetError",
    "dataset_info",
    "fetch",
    "fetch_file",
    "from_pandas",
    "from_polars",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "read_csv",
    "read_parquet",
]

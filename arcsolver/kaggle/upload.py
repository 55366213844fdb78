"""`arcsolver kaggle upload`: a bundle to a private Kaggle dataset through kagglehub, its subfolders kept.

kagglehub's dataset_upload sends a folder's tree as it is (from kagglehub 0.3.13 on: earlier ones
dropped the subfolders, Kaggle/kagglehub issue 254), but a folder of more than 50 files as one
archive.zip of it (gcs_upload.py); the notebook takes either. The Kaggle CLI's
dataset-metadata.json, if `kaggle datasets init` left one in the bundle, stays behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from arcsolver.errors import ArcsolverError
from arcsolver.kaggle.check import KAGGLE_METADATA, read_manifest, verify_files

KEEPS_FOLDERS = (0, 3, 13)  # the first kagglehub whose dataset_upload keeps subfolders
INSTALL = "pip install 'kagglehub>=0.3.13'"
MAX_TREE_FILES = 50  # kagglehub sends a folder of more files as one archive.zip
CREDENTIALS = (
    "set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), or put the kaggle.json of your Kaggle account's "
    "settings (API, Create New Token) in ~/.kaggle"
)


@dataclass
class Uploaded:
    files: int  # the bundle's files sent
    size: int  # their bytes
    packed: bool  # sent as one archive.zip (more than MAX_TREE_FILES files)


def _kagglehub():
    """kagglehub, one that keeps subfolders; ArcsolverError saying how to install it otherwise."""
    try:
        import kagglehub
    except ImportError:
        raise ArcsolverError(f"uploading a bundle needs kagglehub: {INSTALL}") from None
    version = tuple(int(part) for part in re.findall(r"\d+", kagglehub.__version__)[:3])
    if version < KEEPS_FOLDERS:
        raise ArcsolverError(
            f"kagglehub {kagglehub.__version__} drops a bundle's subfolders (kept from 0.3.13 on): {INSTALL}"
        )
    return kagglehub


def _secrets(credentials) -> list[str]:
    """The secret parts of kagglehub's credentials, never to be printed."""
    return [s for s in (getattr(credentials, "key", None), getattr(credentials, "api_key", None)) if s]


def _said(e: BaseException, secrets: list[str]) -> str:
    """An exception's first line, any secret in it masked."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def upload_bundle(bundle: Path, dataset: str, notes: str = "") -> Uploaded:
    """Upload a bundle, every file verified against its manifest first, to the private Kaggle
    dataset OWNER/SLUG (created, or given a new version); refused in one line without kagglehub or
    Kaggle credentials, before anything is sent."""
    if not re.fullmatch(r"[\w-]+/[\w-]+", dataset):
        raise ArcsolverError(f"--dataset {dataset!r}: expected OWNER/SLUG, e.g. me/arcsolver-bundle")
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)  # what the notebook's first check would refuse is never sent
    kagglehub = _kagglehub()
    from kagglehub.config import get_kaggle_credentials
    from kagglehub.exceptions import BackendError, KaggleApiHTTPError

    try:
        credentials = get_kaggle_credentials()
    except ValueError as e:  # a kaggle.json that is not one
        raise ArcsolverError(f"{dataset}: {_said(e, [])}; {CREDENTIALS}") from None
    if credentials is None:
        raise ArcsolverError(f"{dataset}: uploading needs Kaggle credentials; {CREDENTIALS}")
    try:
        kagglehub.dataset_upload(dataset, str(bundle), version_notes=notes, ignore_patterns=[KAGGLE_METADATA])
    except (KaggleApiHTTPError, BackendError) as e:  # Kaggle answered, and refused
        raise ArcsolverError(
            f"{dataset}: Kaggle refused the upload ({_said(e, _secrets(credentials))}); check the credentials and "
            "that OWNER is your user name, then upload again"
        ) from None
    except OSError as e:  # the network's errors (requests' are OSErrors), a file gone since it was verified
        raise ArcsolverError(
            f"{dataset}: the upload failed ({_said(e, _secrets(credentials))}); upload again"
        ) from None
    sent = [bundle / entry.path for entry in manifest.files] + [bundle / "manifest.json"]
    return Uploaded(len(sent), sum(p.stat().st_size for p in sent), len(sent) > MAX_TREE_FILES)

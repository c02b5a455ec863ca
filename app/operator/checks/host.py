"""The data directory: room for the jobs that may run at once, and the database in it."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from app.assembly import open_store

from .result import CheckResult, Context, failed, ok, skipped, warn

MB = 1024 * 1024
# ext4's own metadata on top of each job's quota (app/agent/sandbox/disk.py keeps the same margin).
JOB_DISK_MARGIN_MB = 64
FIX_DISK = "free space in the data directory, move it (AGENTVINE_DATA_DIR), or run fewer jobs at once " \
           "(AGENTVINE_MAX_CONCURRENT_JOBS) or smaller ones (workspace.max_size_mb)"


def _existing(path: Path) -> Path:
    """The folder itself, or the nearest one above it that exists (the data directory may be new)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(ctx: Context) -> CheckResult:
    """Each running job may fill its whole quota: free space for all of them at once, or a warning."""
    if ctx.settings is None or ctx.config is None:
        return skipped("disk", "the settings or the bot configuration did not load")
    where = _existing(ctx.settings.data_dir)
    free_mb = shutil.disk_usage(where).free // MB
    per_job = ctx.config.workspace.max_size_mb + JOB_DISK_MARGIN_MB
    jobs = ctx.settings.max_concurrent_jobs
    detail = f"{free_mb / 1024:.1f} GiB free in {where}"
    if jobs > 0 and free_mb < per_job:
        return failed("disk", f"{detail}: not enough for one job's workspace ({per_job} MB)", FIX_DISK)
    if free_mb < per_job * jobs:
        return warn("disk", f"{detail}: less than {jobs} jobs at once may fill ({per_job * jobs / 1024:.1f} GiB)",
                    FIX_DISK)
    return ok("disk", f"{detail}, room for {jobs} jobs of {per_job} MB at once")


def check_database(ctx: Context) -> CheckResult:
    """Opening the store creates and migrates it, as `serve` will."""
    if ctx.settings is None:
        return skipped("database", "the settings did not load")
    path = ctx.settings.database_path
    try:
        store = open_store(ctx.settings)
    except (sqlite3.Error, OSError) as exc:
        return failed("database", f"{path} cannot be opened: {exc}",
                      "AGENTVINE_DATA_DIR must be a folder this user can write; move a damaged agentvine.db away")
    try:
        return ok("database", f"{path} opens and is migrated")
    finally:
        store.close()

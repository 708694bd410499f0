"""Run bill day in a child process, so that a test can kill it with SIGKILL mid-run."""

from __future__ import annotations

import sys
from datetime import date

from billing.jobs.bill_day import BillDayJob, bill_day
from billing.jobs.runner import InProcessRunner

if __name__ == "__main__":
    url, as_of, per_batch = sys.argv[1], date.fromisoformat(sys.argv[2]), int(sys.argv[3])
    bill_day(InProcessRunner(), BillDayJob(url, as_of, "child", per_batch=per_batch))

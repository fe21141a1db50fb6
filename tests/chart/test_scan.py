"""checkov, an independent policy scanner, over every rendered value set and the Dockerfile: every
finding must be one the chart README accepts and explains ("Scanner findings"), and every accepted
finding must still occur (the list stays true).

checkov runs from its own virtualenv, build/checkov, made here on first use from the hashed lock
requirements/checkov.txt (checkov pins packaging<24, which pytest 9 cannot share a venv with).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_chart import CHART_DIR, VALUE_SETS, render

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "checkov.txt"
VENV = ROOT / "build" / "checkov"
# An accepted-findings row of the chart README: | `CKV_K8S_43` | Deployment, Pod | why |
ACCEPTED_ROW = re.compile(r"^\| `(CKV2?_[A-Z0-9]+_\d+)` \| ([A-Za-z, ]+) \| (.+) \|$", flags=re.MULTILINE)


@pytest.fixture(scope="module")
def checkov() -> Path:
    """build/checkov/bin/checkov, installed from the lock unless the installed one came from this lock."""
    stamp = VENV / ".lock-sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", "--require-hashes", "-r", str(LOCK)],
            check=True,
            timeout=900,
        )
        stamp.write_text(digest)
    return VENV / "bin" / "checkov"


def _accepted() -> dict[str, set[str]]:
    """The README's accepted findings: check id -> the kinds it is accepted on."""
    section = (CHART_DIR / "README.md").read_text().partition("## Scanner findings")[2]
    rows = ACCEPTED_ROW.findall(section)
    assert rows, "the chart README has no accepted findings table"
    return {check: {kind.strip() for kind in kinds.split(",")} for check, kinds, _ in rows}


def _scan(checkov: Path, workdir: Path) -> dict[tuple[str, str], set[str]]:
    """Render every value set into workdir/<set>/, copy the Dockerfile, scan once: (check, kind) -> sets."""
    for name, values in VALUE_SETS.items():
        folder = workdir / name
        folder.mkdir()
        for index, doc in enumerate(render(values).all()):
            (folder / f"{index:02d}-{doc['kind']}.yaml").write_text(yaml.safe_dump(doc))
    shutil.copy(ROOT / "Dockerfile", workdir / "Dockerfile")
    frameworks = ["--framework", "kubernetes", "dockerfile"]
    output = ["--output", "json", "--quiet", "--compact", "--skip-download"]
    result = subprocess.run(
        [str(checkov), "--directory", str(workdir), *frameworks, *output],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=workdir,
    )
    # 0: nothing failed, 1: some check failed; anything else is checkov failing.
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports: Any = json.loads(result.stdout)
    findings: dict[tuple[str, str], set[str]] = defaultdict(set)
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for failed in report["results"]["failed_checks"]:
            where = failed["file_path"].strip("/").split("/")[0]
            kind = "Dockerfile" if report["check_type"] == "dockerfile" else failed["resource"].split(".")[0]
            findings[failed["check_id"], kind].add(where)
    return findings


@pytest.mark.timeout(900)  # the first run builds the checkov venv (~1 min, more on a loaded machine)
def test_every_scanner_finding_is_accepted_and_explained(checkov: Path, tmp_path: Path) -> None:
    findings = _scan(checkov, tmp_path)
    accepted = _accepted()
    unexplained = {
        f"{check} on {kind} ({', '.join(sorted(where))})"
        for (check, kind), where in findings.items()
        if kind not in accepted.get(check, set())
    }
    assert not unexplained, f"fix them, or accept and explain them in the chart README: {sorted(unexplained)}"
    stale = {
        f"{check} on {kind}"
        for check, kinds in accepted.items()
        for kind in kinds
        if (check, kind) not in findings
    }
    assert not stale, f"accepted in the chart README but no longer found (remove them): {sorted(stale)}"
    # Pinning the image by digest clears the digest finding: it is a default, not a gap.
    assert "extensions" not in findings.get(("CKV_K8S_43", "Deployment"), set())

"""The README's two commands are the contract; CI must run exactly the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_starts_with_the_main_job_then_the_tests() -> None:
    main_job, tests = _readme_commands()[:2]
    assert main_job.startswith("python3 -m venv .venv && ") and main_job.endswith("emnist-idx demo")
    assert '".[cpu]"' in main_job
    assert '".[cpu,test]"' in tests and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command_then_the_hostile_fast_tier() -> None:
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith("#")]
    readme_command = ci_lines.index(_readme_commands()[1])
    assert ci_lines[readme_command + 1:].count(".ci/hostile .venv/bin/python") == 1

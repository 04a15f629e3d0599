"""The README is a library README: its two commands are the contract, and it stays short."""

from __future__ import annotations

import re

from tests.docs_runner import SETUP_PREFIX, ROOT, commands_step_here

README = ROOT / "README.md"
MAX_WORDS = 1500


def _readme_commands() -> list[str]:
    section = README.read_text().split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_starts_with_the_main_job_then_the_tests() -> None:
    main_job, tests = _readme_commands()
    assert main_job.startswith(SETUP_PREFIX) and main_job.endswith("emnist-idx demo")
    assert '".[cpu]"' in main_job
    assert '".[cpu,test]"' in tests and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command_then_the_hostile_fast_tier() -> None:
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith("#")]
    readme_command = ci_lines.index(_readme_commands()[1])
    assert ci_lines[readme_command + 1:].count(".ci/hostile .venv/bin/python") == 1


def test_the_docs_run_the_demo_command_last_step_as_written() -> None:
    assert commands_step_here(_readme_commands()[0]) == "emnist-idx demo"


def test_readme_is_at_most_1500_words() -> None:
    words = len(README.read_text().split())
    assert words <= MAX_WORDS, f"README.md has {words} words, expected at most {MAX_WORDS}"

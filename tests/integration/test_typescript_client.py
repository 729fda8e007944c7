"""openapi.json as a frontend team uses it: a strict TypeScript client generated from it
(openapi-typescript types, openapi-fetch calls; the npm packages pinned in tests/typescript)
must type-check tests/typescript/frontend.ts, whose switches over statuses, phases and error
codes are exhaustive and which reads the always-sent fields without optional checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.export_openapi import ROOT

CLIENT = ROOT / "tests" / "typescript"
GENERATED = CLIENT / "generated"  # git-ignored, like node_modules

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed: the TypeScript client check needs them",
)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=CLIENT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def generated_client() -> Path:
    installed = CLIENT / "node_modules" / ".package-lock.json"
    lock = CLIENT / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        done = run("npm", "ci", "--no-audit", "--no-fund")
        assert done.returncode == 0, done.stdout + done.stderr
    done = run("npm", "run", "--silent", "generate")
    assert done.returncode == 0, done.stdout + done.stderr
    return GENERATED / "schema.d.ts"


def test_the_frontend_type_checks_against_the_generated_client(generated_client: Path) -> None:
    assert generated_client.exists()
    checked = run("npx", "--no-install", "tsc", "--project", "tsconfig.json")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_switch_missing_a_phase_fails_the_check(generated_client: Path) -> None:
    """The check can fail: a frontend that forgets one enumerated value does not compile."""
    (GENERATED / "missing_case.ts").write_text(
        'import type { components } from "./schema";\n'
        'type Phase = components["schemas"]["Phase"];\n'
        "function unreachable(value: never): never { throw new Error(String(value)); }\n"
        "export function text(phase: Phase): string {\n"
        "  switch (phase) {\n"
        '    case "queued": case "preprocessing": case "generating": case "storing":\n'
        '    case "succeeded": case "failed": case "canceled":\n'
        "      return phase;\n"
        "    default:\n"
        "      return unreachable(phase);\n"
        "  }\n"
        "}\n"
    )
    (GENERATED / "tsconfig.json").write_text(
        '{"extends": "../tsconfig.json", "files": ["missing_case.ts"]}\n'
    )
    checked = run("npx", "--no-install", "tsc", "--project", "generated/tsconfig.json")
    assert checked.returncode != 0
    assert "'\"waiting_for_capacity\"' is not assignable to parameter of type 'never'" in (
        checked.stdout
    ), checked.stdout

"""Follow the README's "Operate" section word for word on a fresh clone; fail if anything fails.

    .venv/bin/python scripts/replay_operations.py [--repo .] [--keep]

1. `git clone` the repository (its committed HEAD) into a temporary directory and install it
   the way the README says (`make install`: a new `.venv` from pyproject.toml).
2. Demo extracts with the README's own command (`expansion demo-data`, small size).
3. A fresh machine has no `prefect` database: drop it if an earlier replay left one.
4. Every ```sh block of "## Operate", in order, in ONE bash session (`set -euo pipefail`, so
   exports carry over and any failing command stops the replay), exactly as written. The one
   exception is a command that runs in the foreground until stopped (`expansion serve` with
   no `&`): it is started as written in the background, must print that it is serving within
   three minutes, and is then stopped. Background jobs (`&`) are stopped when the session ends.
5. Checks: the session exited 0, which includes both `prefect deployment run ... --watch`
   commands (a served run and a work-pool run) reaching Completed; the clone's state holds
   completed run records and a serving file.

Writes the whole session's output to `<workdir>/replay.log` and prints a summary; exit 0 only
when every check passed. Needs the local PostgreSQL (scripts/ensure-postgres.sh), port 4200
free, and the package registry for the install. Takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Operate"
# commands that run in the foreground until stopped, and what they print once they work
FOREVER = {r"^\.venv/bin/expansion serve\b(?!.*&\s*(#.*)?$)": "being served"}
DEMO = ".venv/bin/expansion demo-data --accounts 240 --months 16 --seed 11"

PRELUDE = r"""
set -euo pipefail
set -m
__jobs=()
__stop_all() {
  for pid in $(jobs -p); do kill -INT -- "-$pid" 2>/dev/null || true; done
  sleep 3
  for pid in $(jobs -p); do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap __stop_all EXIT
__forever() {  # __forever <command line> <text it prints once it works>
  local log; log=$(mktemp)
  bash -c "$1" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 180); do
    if grep -q "$2" "$log"; then
      echo "[replay] '$1' is up ('$2'); stopping it"
      kill -INT -- "-$pid" 2>/dev/null || true; sleep 3; kill -KILL -- "-$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "[replay] '$1' exited before it printed '$2':"; cat "$log"; return 1
    fi
    sleep 1
  done
  echo "[replay] '$1' did not print '$2' within 180 s:"; cat "$log"; return 1
}
"""


def operate_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the Operate section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def session_script(blocks: list[str]) -> str:
    """One bash script: the prelude, then every line of every block as written."""
    lines = [PRELUDE]
    for number, block in enumerate(blocks, 1):
        lines.append(f'echo "[replay] --- block {number} ---"')
        for line in block.splitlines():
            command = line.strip()
            if not command:
                continue
            lines.append(f"echo {json.dumps('[replay] $ ' + command)}")
            ready = next((text for pat, text in FOREVER.items() if re.search(pat, command)), None)
            if ready is not None:
                bare = command.split("#", 1)[0].strip()
                lines.append(f"__forever {json.dumps(bare)} {json.dumps(ready)}")
            else:
                lines.append(command)
    lines.append('echo "[replay] --- all blocks done ---"')
    return "\n".join(lines) + "\n"


def run(cmd: str, cwd: Path, log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n[replay] $ {cmd}\n")
        out.flush()
        return subprocess.run(
            ["bash", "-c", cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env
        ).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="replay-operations-"))
    clone = work / "expansion"
    log = work / "replay.log"
    checks: dict[str, bool] = {}
    started = time.monotonic()
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EXPANSION_"))}
    env["HOME"] = str(work / "home")  # a fresh user: no ~/.prefect profile from earlier runs
    (work / "home").mkdir()
    try:
        checks["clone"] = (
            run(f"git clone --quiet file://{args.repo.resolve()} {clone}", work, log) == 0
        )
        checks["make install"] = checks["clone"] and run("make install", clone, log, env) == 0
        checks["demo data"] = checks["make install"] and run(DEMO, clone, log, env) == 0
        run("dropdb -h 127.0.0.1 -U postgres --if-exists --force prefect", work, log)
        script = session_script(operate_blocks((clone / "README.md").read_text("utf-8")))
        (work / "operate.sh").write_text(script, encoding="utf-8")
        checks["README Operate section"] = (
            checks["demo data"] and run(f"bash {work / 'operate.sh'}", clone, log, env) == 0
        )
        records = [
            json.loads(p.read_text("utf-8")) for p in (clone / "state" / "runs").glob("*.json")
        ]
        completed = [r for r in records if r.get("status") == "completed"]
        checks["two completed pipeline runs"] = len(completed) >= 2
        checks["serving file"] = (clone / "state" / "serving" / "expansion.duckdb").exists()
    finally:
        run("dropdb -h 127.0.0.1 -U postgres --if-exists --force prefect", work, log)
        minutes = (time.monotonic() - started) / 60
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        print(f"replay took {minutes:.1f} min; full output: {log}")
        if not args.keep and all(checks.values()):
            shutil.rmtree(clone, ignore_errors=True)
    return 0 if checks and all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

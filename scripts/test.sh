#!/usr/bin/env bash
# Run every test. Uses REDIS_URL and GED_TEST_DATABASE_URL when set (CI sets both);
# otherwise the tests start a private Redis and use SQLite only.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
mkdir -p test-artifacts
set +e
"$VENV/bin/python" -m pytest -q -ra "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "no tests were collected" >&2
fi
exit "$status"

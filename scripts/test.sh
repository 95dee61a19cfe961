#!/usr/bin/env bash
# Run every test. Uses REDIS_URL and GED_TEST_DATABASE_URL when set (CI sets both);
# otherwise the tests start a private Redis and use SQLite only. The tests run in
# GED_TEST_WORKERS processes (pytest-xdist; default: 2, 0 runs them in this process),
# each with its own Redis database, PostgreSQL schemas and temporary directories.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
mkdir -p test-artifacts
set +e
workers="${GED_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 0 ]; then
  parallel=(-n "$workers" --dist worksteal)
fi
"$VENV/bin/python" -m pytest -q -ra "${parallel[@]}" "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "no tests were collected" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Sourced by .ci/run: starts a throw-away PostgreSQL cluster (initdb + pg_ctl as the postgres user,
# trust auth on a free 127.0.0.1 port) under $CATALENS_CI_SERVICES for the whole test run, exports
# CATALENS_TEST_PG_URL for the fixtures of tests/services/postgres.py and writes stop-postgres.sh.
# The start/stop logic is tests/services/pgserver.py, shared with the fixtures. A server that cannot
# start fails the run (the sourced script returns non-zero under .ci/run's `set -e`).
_pg_dir="$CATALENS_CI_SERVICES/postgres"
chmod a+x "$CATALENS_CI_SERVICES"   # initdb runs as postgres: it must reach its folder
printf '#!/usr/bin/env bash\nexec python %q stop %q\n' "$PWD/tests/services/pgserver.py" "$_pg_dir" \
  >"$CATALENS_CI_SERVICES/stop-postgres.sh"
chmod +x "$CATALENS_CI_SERVICES/stop-postgres.sh"
if ! CATALENS_TEST_PG_URL=$(python tests/services/pgserver.py start "$_pg_dir"); then
  echo "error: the PostgreSQL test server did not start (see above; log: $_pg_dir/server.log)" >&2
  return 1 2>/dev/null || exit 1
fi
export CATALENS_TEST_PG_URL
echo "PostgreSQL test server: $CATALENS_TEST_PG_URL"
unset _pg_dir

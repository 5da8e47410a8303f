#!/usr/bin/env bash
# Sourced by .ci/run: starts a throw-away Milvus 2.3 standalone server (`milvus-server` from the
# `milvus` package of the dev extra) on a free 127.0.0.1 port with its data under
# $CATALENS_CI_SERVICES for the whole test run, exports CATALENS_TEST_MILVUS_URI
# (milvus://127.0.0.1:PORT) for the fixtures of tests/services/milvus.py and writes stop-milvus.sh.
# The start/stop logic is tests/services/milvusserver.py, shared with the fixtures. A server that
# cannot start fails the run (the sourced script returns non-zero under .ci/run's `set -e`).
_mv_dir="$CATALENS_CI_SERVICES/milvus"
printf '#!/usr/bin/env bash\nexec python %q stop %q\n' "$PWD/tests/services/milvusserver.py" "$_mv_dir" \
  >"$CATALENS_CI_SERVICES/stop-milvus.sh"
chmod +x "$CATALENS_CI_SERVICES/stop-milvus.sh"
if ! CATALENS_TEST_MILVUS_URI=$(python tests/services/milvusserver.py start "$_mv_dir"); then
  echo "error: the Milvus test server did not start (see above; logs: $_mv_dir/launcher.log, $_mv_dir/logs)" >&2
  return 1 2>/dev/null || exit 1
fi
export CATALENS_TEST_MILVUS_URI
echo "Milvus test server: $CATALENS_TEST_MILVUS_URI"
unset _mv_dir

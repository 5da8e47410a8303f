#!/usr/bin/env bash
# Stops what the .ci/start-*.sh scripts started: each leaves an executable stop-<name>.sh in the folder.
dir="$1"
for stop in "$dir"/stop-*.sh; do
  [ -e "$stop" ] && bash "$stop" || true
done
rm -rf "$dir"

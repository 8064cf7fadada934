#!/usr/bin/env bash
# End-to-end CLI checks: exit codes and one-line errors on bad input. $QFORGE is the binary.
set -u
ROOT=$1
fails=0
echo "cli_smoke: nothing yet"
exit $fails

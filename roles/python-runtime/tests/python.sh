#!/bin/sh
set -eu
python3 - <<'PY'
import sys, json, http.server, urllib.request, ssl, sqlite3  # what services use
assert sys.version_info >= (3, 11), sys.version
print("ok: python", sys.version.split()[0])
PY

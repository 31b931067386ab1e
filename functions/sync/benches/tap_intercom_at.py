"""Runs Singer's tap-intercom against another base URL (the backfill bench's fake Intercom).

tap-intercom 2.2.5 hard-codes `https://api.intercom.io` in `IntercomClient.__init__` and has no
config key or environment variable for it. This wrapper, run with the Python of the virtualenv
the tap is installed in, sets `base_url` on every client it creates to `$TAP_INTERCOM_BASE_URL`
and then runs the tap's own `main()` with the usual arguments:

    TAP_INTERCOM_BASE_URL=http://127.0.0.1:PORT \
        .venv-peer/bin/python3 functions/sync/benches/tap_intercom_at.py \
        --config config.json --catalog catalog.json

Nothing else of the tap is changed: requests, paging, retries and output are the tap's.
"""

import os
import sys

import tap_intercom
from tap_intercom import client

BASE_URL = os.environ.get("TAP_INTERCOM_BASE_URL", "").rstrip("/")
if not BASE_URL:
    sys.exit("TAP_INTERCOM_BASE_URL is not set")

_original_init = client.IntercomClient.__init__


def _init_at_base_url(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.base_url = BASE_URL


client.IntercomClient.__init__ = _init_at_base_url

if __name__ == "__main__":
    tap_intercom.main()

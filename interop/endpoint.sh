#!/bin/sh
# quicsilver endpoint for the QUIC interop runner: the image's run_endpoint.sh.
# Contract: ROLE, TESTCASE, REQUESTS, /www, /downloads, /certs, QLOGDIR, SSLKEYLOGFILE;
# exit status 127 for an unsupported test case (decided by endpoint.py).
set -e

# The network simulator base image routes traffic through the simulator.
if [ -x /setup.sh ]; then
    /setup.sh
fi

if [ "$ROLE" = "client" ] && [ -x /wait-for-it.sh ]; then
    # Wait for the simulator to start up.
    /wait-for-it.sh sim:57832 -s -t 30
fi

HERE=$(dirname "$0")
PYTHON=${PYTHON:-python3}
exec "$PYTHON" "$HERE/endpoint.py"

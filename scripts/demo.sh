#!/usr/bin/env bash
# `make demo`: the embedded default (SQLite, filesystem broker, artifacts in ./var), demo project loaded,
# one web server and one worker. Ctrl-C stops both.
set -euo pipefail
HOST=${1:-127.0.0.1}
PORT=${2:-8000}
PY=.venv/bin/python
mkdir -p var/log

$PY manage.py migrate --noinput
$PY manage.py load_demo

# One worker for both queues (a GPU node would run `-Q gpu --concurrency 1`); -B runs the beat that requeues
# jobs whose worker died.
.venv/bin/celery -A evalhub worker -Q default,gpu --concurrency 1 -B \
  --schedule var/celerybeat-schedule --loglevel INFO >var/log/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true; wait $WORKER 2>/dev/null || true' EXIT INT TERM

$PY manage.py demo_logins --url "http://$HOST:$PORT/"
echo "Worker log: var/log/worker.log. Press Ctrl-C to stop."
$PY manage.py runserver "$HOST:$PORT" --noreload

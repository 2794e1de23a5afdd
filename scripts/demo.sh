#!/usr/bin/env bash
# The sample flow of the README: the embedded default (SQLite, local files) under SHOAL_HOME
# (~/.shoal unless set). The first command starts the local server in the background.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# Local datastores may point only inside folders the admin allows: here, the example's folder.
export SHOAL_LOCAL_DATASTORE_ROOTS="${SHOAL_LOCAL_DATASTORE_ROOTS:-$PWD/examples/datastore}"
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

run shoal workspace create --file examples/workspace/workspace.yml --query name -o tsv
run shoal compute create --file examples/compute/cpu-cluster.yml -o table
run shoal datastore create --file examples/datastore/local-folder.yml -o table
run shoal model create --file examples/model/mlflow-model.yml --query "{name:name,version:version,path:path}" -o table
run shoal data create --file examples/data/iris-mltable.yml --query "{name:name,version:version,type:type}" -o table
run shoal environment create --file examples/environment/sklearn-conda.yml --query "{name:name,version:version}" -o table
run shoal component create --file examples/component/train.yml --query "{name:name,version:version,code:code}" -o table
run shoal model list -o table
run shoal model show -n credit-model -l latest -o yaml
rm -rf ./out
run shoal model download -n credit-model -v 1 --download-path ./out
run find ./out -type f
run shoal data show -n iris -v 1 --query path -o tsv
run shoal job create --file examples/jobs/train-job.yml --stream
run shoal job list --max-results 5 -o table
run shoal server status
# The studio: a one-time login link (5 minutes), opened where a browser is.
run shoal studio
echo
echo "The server keeps running in the background: 'shoal server stop' ends it."
echo "'shoal studio' prints a new studio link whenever you need one."

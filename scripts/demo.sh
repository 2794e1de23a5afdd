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

# Train a model in a job, register what it wrote, serve it behind an online endpoint, call it.
JOB=$(shoal job create --file examples/tutorial/train-job.yml --query name -o tsv)
run shoal job stream -n "$JOB"
run shoal model create --name iris-centroids --type custom_model --path "azureml://jobs/$JOB/outputs/model" \
  --query "{name:name,version:version,job:job_name}" -o table
run shoal online-endpoint create --file examples/endpoint/endpoint.yml --query "{name:name,scoring_uri:scoring_uri}" -o table
run shoal online-deployment create --file examples/endpoint/blue-deployment.yml --all-traffic \
  --query "{name:name,state:provisioning_state}" -o table
run shoal online-endpoint invoke --name iris-ep --request-file examples/endpoint/sample-request.json
KEY=$(shoal online-endpoint get-credentials -n iris-ep -o tsv --query primaryKey)
URI=$(shoal online-endpoint show -n iris-ep -o tsv --query scoring_uri)
printf '\n\033[1m$ curl -H "Authorization: Bearer $KEY" -d @examples/endpoint/sample-request.json $URI\033[0m\n'
python -c "import sys, urllib.request as u; r = u.Request(sys.argv[1], open(sys.argv[3], 'rb').read(), \
{'Authorization': 'Bearer ' + sys.argv[2], 'Content-Type': 'application/json'}); print(u.urlopen(r).read().decode())" \
  "$URI" "$KEY" examples/endpoint/sample-request.json
run shoal online-deployment show --name blue --endpoint-name iris-ep --query "metrics" -o json
run shoal server status
# The studio: a one-time login link (5 minutes), opened where a browser is.
run shoal studio
echo
echo "The server keeps running in the background: 'shoal server stop' ends it."
echo "'shoal studio' prints a new studio link whenever you need one."

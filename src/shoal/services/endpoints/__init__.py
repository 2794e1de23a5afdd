"""Online endpoints: records and rules (records.py, deployments.py), the files an instance
runs from (instance_files.py), the instance supervisor (supervisor.py) and the scoring router
(router.py)."""

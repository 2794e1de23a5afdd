"""The runner: the only Shoal code that runs on compute (``python -m shoal.runtime``).

It fetches its run spec from the server with a job-scoped token, prepares the environment,
materializes inputs, runs the user command in its own process group, ships logs, heartbeats,
uploads outputs and reports the outcome. Keep imports here light: it starts for every job.
"""

"""The studio's server side: what its pages read (job search, metric series, live state, code
snapshots, lineage) and its browser logins."""

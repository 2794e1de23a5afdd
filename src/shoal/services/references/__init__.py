"""Reference resolution, the floor under job submission and asset registration: ``azureml:``
asset references (``assets.py``), and datastore URIs, job outputs, run artifacts, input literals,
computes, environments and components (``resolution.py``)."""

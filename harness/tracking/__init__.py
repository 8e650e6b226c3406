"""MLflow tracking: `contract` names everything the harness writes and reads (the one module
the dashboards may import); `runs` opens and ends runs with provenance; `trials` mirrors Ray
Tune trials into child runs."""

"""`botwatch agent`: one per host. The exporter for that host's bots, plus an executor that runs the jobs the
central remediator queues for them (docs/operations.md, "Many hosts")."""

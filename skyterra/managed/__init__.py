"""Managed jobs: a run that outlives node loss, preemption and the terminal that started it.

`skyterra jobs launch` records the job (store.py) and starts a controller
(controller.py) as a process of its own: it brings the job's cluster up
through the ordinary launch path, watches the nodes and the run, and on a
lost node re-applies the module (replacing that node) or moves to the next
candidate, as the task's `resources.job_recovery` says (recovery.py). The
cluster belongs to the job and is destroyed when the job ends.
"""

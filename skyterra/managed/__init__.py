"""Managed jobs: a run that outlives node loss, preemption and the terminal that started it.

`skyterra jobs launch` records the job (store.py) and starts a controller
(controller.py) as a process of its own (daemon.py), or on a node of its own
(remote.py, set up by bootstrap.py): it brings the job's cluster up through
the ordinary launch path, watches the nodes and the run, and on a lost node
re-applies the module (replacing that node) or moves to the next candidate,
and on a failed run restarts it or not, as the task's `resources.job_recovery`
says (recovery.py). With a shared backend the records are also the team's
(board.py). The cluster belongs to the job and is destroyed when the job ends.
client.py is the user's side (what api.jobs_* call).
"""

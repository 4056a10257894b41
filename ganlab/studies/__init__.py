"""Sweeps as Optuna studies: many workers, on many machines, pulling trials from one storage.

``ganlab sweep FILE.toml --storage URL`` (or ``--workers N``, or a ``[search]`` table in the
file) turns a sweep into an Optuna study: every grid variant is enqueued as one trial (a search
enqueues ``n_trials`` trials whose settings its sampler draws), the sweep's MLflow parent run is
opened on the tracking server, and workers (``ganlab sweep-worker STUDY --storage URL``) claim
waiting trials one at a time, each claim a compare-and-set in the storage, so a trial runs once.
Each trial is an ordinary ``ganlab run`` process recorded as a child of the parent run.

A worker writes a heartbeat into its trial every few seconds; a trial whose heartbeat stops
(its worker was killed, its machine lost) is failed by whichever worker notices, its MLflow run
is ended FAILED, and it is retried once as a new trial; a retry that dies too stays FAILED with
its reason. Modules: ``space`` (search distributions), ``storage`` (URLs and reachability),
``study`` (creating a study from a sweep file, and its status), ``worker`` (the loop a worker
runs), ``pruning`` (reporting evaluations to the trial from inside a run).
"""

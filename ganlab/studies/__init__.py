"""The one sweep executor: every sweep is an Optuna study that workers pull trials from.

``ganlab sweep FILE.toml`` makes a study of the file (``study``): every grid variant is enqueued as
one trial (a search enqueues ``n_trials`` trials whose settings its sampler draws; a variant that
already FINISHED is entered complete with its earlier run), and the sweep's MLflow parent run is
opened (``parent``). Workers (``worker``) claim waiting trials one at a time, each claim a
compare-and-set in the storage, so a trial runs once; each trial is an ordinary ganlab run
recorded as a child of the parent run (``launch``: in the worker's process, or as a child
process). By default the study lives in a journal file inside the run store and one worker runs
in the sweep's own process; ``--jobs N`` starts N worker processes here (``local``, with GPUs
handed out by ``gpus``); ``--storage URL`` and ``ganlab sweep-worker`` spread it over machines.

A worker writes Optuna's heartbeat into its trial every few seconds; a trial whose heartbeat stops
(its worker was killed, its machine lost) is failed by whichever worker notices
(``fail_stale_trials``), its MLflow run is ended FAILED, and it is retried once as a new trial
(Optuna's retry callback); a retry that dies too stays FAILED. Also: ``space`` (search
distributions), ``storage`` (URLs, reachability, the journal file's heartbeat), ``pruning``
(reporting evaluations to the trial from inside a run).
"""

"""Population runs: ``ganlab run --seeds 0-7`` trains N seeds as one vectorised model.

A comparison of heads needs many seeds, and the article's networks are far
too small to keep a GPU busy one seed at a time (there a step is launch-bound,
docs/benchmarks.md). A population stacks the N replicas' weights and trains
them in one call per layer (``ganlab.train.population.stacked``); each replica
still follows exactly the trajectory of the single run with its seed, and is
recorded as an ordinary MLflow run, a child of the population's parent run.
On a small CPU the same networks are compute-bound and a population mostly
saves start-up (docs/benchmarks.md, "Population runs").

What cannot be vectorised runs one seed after another, with a one-line notice
saying why (``why_sequential``): an architecture that does not declare
``vectorisable = True``, data streamed from disk, an objective with per-run
state (the semi-supervised one). Mixed precision with a gradient scaler
(fp16), ``--compile`` and torchrun are refused in one line: their effect on a
population is not the single runs' effect.
"""

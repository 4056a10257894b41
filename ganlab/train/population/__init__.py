"""Population runs: ``ganlab run --seeds 0-7`` trains N seeds as one vectorised model.

A comparison of heads needs many seeds, and the article's networks are far
too small to keep a GPU busy one seed at a time (there a step is launch-bound,
docs/benchmarks.md). A population stacks the N replicas' weights and trains
them in one call per layer (``ganlab.train.population.stacked``); each replica
still follows exactly the trajectory of the single run with its seed, and is
recorded as an ordinary MLflow run, a child of the population's parent run.
On a small CPU the same networks are compute-bound and a population mostly
saves start-up (docs/benchmarks.md, "Population runs").

The step is the single run's own (``ganlab.train.engine.make_step_functions``), given the
stacked networks and every replica's rows. What cannot be stacked is one declared list
(``setup.why_sequential``: a component lacking its declared capability, or data streamed from
disk); such a population runs its seeds one after another, saying why in one line. Mixed
precision with a gradient scaler (fp16), ``--compile`` and torchrun are refused in one line:
their effect on a population is not the single runs' effect.
"""

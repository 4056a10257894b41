"""The run's MLflow record: the store (store.py), the tracker plugin (tracker.py), what it holds (outputs.py), the writer process, liveness, pictures."""

"""The run's MLflow record: the tracker (a lifecycle plugin), the writer process, liveness, pictures."""

"""Training multimodal models: config -> data -> model -> trainer -> run folder -> evaluation.

Import the pieces from their modules (`training.trainer.Trainer`, `training.runs.run_training`);
this package file stays empty of imports so `sensorium --help` never loads torch for it.
"""

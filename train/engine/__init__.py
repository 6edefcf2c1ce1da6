"""The training engine, which knows no method: `runner.Runner` trains one `job.Job` (a method's stage or a
fine-tuning unit); `pretrain.pretrain` runs a method's stages in order; `errors` holds every error a user can
cause; `checkpoint`, `batches`, `distributed` and `schedules` are its parts; `command` is what every
`python -m train.<command>` shares. Methods live beside it in `train.methods`."""

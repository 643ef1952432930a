"""The floor everything stands on: store, jobs and daemon, config, workspace, errors, logs."""

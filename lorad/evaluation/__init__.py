"""Evaluation on the user's own pods: a generation service whose endpoint is a command on a
pod (a declared trainer's `[trainers.NAME.inference]`), for checkpoints no hosted endpoint can
run. It sits above training (pods, trainers) and generation (services, endpoints) and joins
them; nothing below imports it."""

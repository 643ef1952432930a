"""Publishing checkpoints: the model card, the LoRA conversion, the Hub."""

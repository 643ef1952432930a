-- Whether a LoRA lives in a private Hub repo: services may not be able to download it.
ALTER TABLE loras ADD COLUMN private INTEGER NOT NULL DEFAULT 0;

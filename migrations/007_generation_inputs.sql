-- Local files a generation sends (a start image for image-to-video): which parameter, the file,
-- its SHA-256 and the fal storage URL it was uploaded to, so the output traces back to its input.
ALTER TABLE generations ADD COLUMN inputs TEXT NOT NULL DEFAULT '{}';

-- What a person records about a track (audio datasets): where it came from (provider, license,
-- what it cost, when) and the style preset its tag prompt was built from (its category counts
-- in the dataset's style balance). JSON, written by lorad.media.clips only.
ALTER TABLE clips ADD COLUMN track TEXT;

-- Generation services are plugins (lorad.generation.services): a generation names its service
-- and keeps the handle the service gave it, as given (fal's: request id, endpoint, three URLs).
ALTER TABLE generations ADD COLUMN service TEXT NOT NULL DEFAULT 'fal';
ALTER TABLE generations RENAME COLUMN urls TO handle;
UPDATE generations SET handle = json_set(handle, '$.request_id', request_id,
                                         '$.endpoint_id', endpoint)
 WHERE request_id IS NOT NULL;

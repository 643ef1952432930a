-- Files inside the workspace are stored relative to it, so the folder can be moved or copied
-- whole (lorad.core.store.stored_path / local_path). lorad_root() is the folder holding this
-- database, defined by lorad.core.store.connect. Paths elsewhere (sources on another disk) stay
-- absolute.
UPDATE clips SET source_path = substr(source_path, length(lorad_root()) + 2)
 WHERE substr(source_path, 1, length(lorad_root()) + 1) = lorad_root() || '/';
UPDATE clips SET media_path = substr(media_path, length(lorad_root()) + 2)
 WHERE substr(media_path, 1, length(lorad_root()) + 1) = lorad_root() || '/';
UPDATE clips SET filmstrip_path = substr(filmstrip_path, length(lorad_root()) + 2)
 WHERE substr(filmstrip_path, 1, length(lorad_root()) + 1) = lorad_root() || '/';
UPDATE dataset_versions SET export_path = substr(export_path, length(lorad_root()) + 2)
 WHERE substr(export_path, 1, length(lorad_root()) + 1) = lorad_root() || '/';
UPDATE checkpoints SET local_path = substr(local_path, length(lorad_root()) + 2)
 WHERE substr(local_path, 1, length(lorad_root()) + 1) = lorad_root() || '/';
UPDATE generations SET output_path = substr(output_path, length(lorad_root()) + 2)
 WHERE substr(output_path, 1, length(lorad_root()) + 1) = lorad_root() || '/';

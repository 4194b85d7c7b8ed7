ALTER TABLE devices DROP COLUMN status_at;
ALTER TABLE devices DROP COLUMN registration;
ALTER TABLE devices DROP COLUMN network_operator;
ALTER TABLE devices DROP COLUMN signal_dbm;

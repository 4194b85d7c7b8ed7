-- What a modem reports about its radio (through the modem agent's status calls), shown on
-- the device in the dashboard.
ALTER TABLE devices ADD COLUMN signal_dbm integer;
ALTER TABLE devices ADD COLUMN network_operator text NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN registration text NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN status_at timestamptz;

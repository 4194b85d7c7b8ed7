DROP TABLE dispatch_rotation;
DROP TABLE sms_usage;
DROP TABLE idempotency_keys;
DROP TABLE message_events;
DROP TABLE messages;
DROP TABLE devices;
DROP TABLE api_keys;

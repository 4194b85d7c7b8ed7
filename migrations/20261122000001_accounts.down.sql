DROP TABLE cron_ticks;
DROP TABLE rate_limits;
DROP TABLE sessions;
DROP TABLE setup_tokens;
DROP TABLE email_tokens;
DROP TABLE oauth_identities;
DROP TABLE users;

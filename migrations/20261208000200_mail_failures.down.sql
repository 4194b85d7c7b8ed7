DROP TABLE mail_failures;

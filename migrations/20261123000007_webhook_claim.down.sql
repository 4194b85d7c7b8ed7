DROP FUNCTION webhook_claim(bigint, float8, int, bigint, uuid[]);

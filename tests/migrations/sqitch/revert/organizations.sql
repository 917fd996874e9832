BEGIN;
DROP TABLE organizations;
COMMIT;

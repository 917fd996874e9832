BEGIN;
CREATE TABLE organizations (id serial PRIMARY KEY, name text NOT NULL);
COMMIT;

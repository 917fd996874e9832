BEGIN;
CREATE TABLE items (
    id serial PRIMARY KEY,
    org_id integer NOT NULL REFERENCES organizations (id),
    quantity integer NOT NULL DEFAULT 0
);
COMMIT;

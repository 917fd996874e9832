--liquibase formatted sql

--changeset ana:1
--comment: the tenants
-- organizations: each tenant is one row
CREATE TABLE organizations (
    id serial PRIMARY KEY,
	name text NOT NULL
);
--rollback DROP TABLE organizations;

--changeset ana:2
--preconditions onFail:HALT
--precondition-sql-check expectedResult:1 SELECT count(*) FROM pg_tables WHERE tablename = 'organizations'
CREATE TABLE items (id serial PRIMARY KEY, org_id integer NOT NULL REFERENCES organizations (id), label text);


CREATE INDEX items_org_id ON items (org_id);
--rollback DROP TABLE items;

--changeset bo:3
ALTER TABLE items
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();

--  the tenant of an item never changes: one index serves its listing
CREATE INDEX items_org_created ON items (org_id, created_at);
/* liquibase rollback
DROP INDEX items_org_created;
ALTER TABLE items DROP COLUMN created_at;
*/

-- migrate:up
CREATE TABLE organizations (id serial PRIMARY KEY, name text NOT NULL);

-- migrate:down
DROP TABLE organizations;

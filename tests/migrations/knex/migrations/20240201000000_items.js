exports.up = (knex) =>
  knex.schema.createTable("items", (t) => {
    t.increments("id");
    t.integer("org_id").notNullable().references("organizations.id");
    t.integer("quantity").notNullable().defaultTo(0);
  });

exports.down = (knex) => knex.schema.dropTable("items");

exports.up = (knex) =>
  knex.schema.createTable("organizations", (t) => {
    t.increments("id");
    t.text("name").notNullable();
  });

exports.down = (knex) => knex.schema.dropTable("organizations");

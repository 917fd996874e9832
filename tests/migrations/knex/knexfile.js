// Our own Knex project: the connection comes from DATABASE_URL, as the sign-off's tests give it;
// KNEX_TABLE renames the history table, as an application's tableName does.
module.exports = {
  client: "pg",
  connection: process.env.DATABASE_URL,
  migrations: { directory: "./migrations", tableName: process.env.KNEX_TABLE || "knex_migrations" },
};

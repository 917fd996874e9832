// Our own Knex project: the connection comes from DATABASE_URL, as the sign-off's tests give it.
module.exports = {
  client: "pg",
  connection: process.env.DATABASE_URL,
  migrations: { directory: "./migrations" },
};

// Our own drizzle-kit project: the migrations in ./drizzle, applied to DATABASE_URL.
module.exports = {
  dialect: "postgresql",
  out: "./drizzle",
  dbCredentials: { url: process.env.DATABASE_URL },
};

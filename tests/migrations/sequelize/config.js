// DATABASE_URL, with a socket folder given as ?host= (as libpq reads it).
const url = new URL(process.env.DATABASE_URL);
const database = {
  dialect: "postgres",
  database: url.pathname.slice(1),
  username: decodeURIComponent(url.username) || "postgres",
  password: decodeURIComponent(url.password) || null,
  host: url.searchParams.get("host") || url.hostname,
  port: url.port || 5432,
  logging: false,
};
module.exports = { development: database, production: database };

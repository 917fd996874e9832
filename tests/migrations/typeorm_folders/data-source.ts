// Our own TypeORM project supporting two databases, as some applications do: a folder of
// migrations per database (migration/postgres, migration/mysql) and one folder whose data
// migrations run on either (migration/shared). This data source is PostgreSQL's: it lists
// migration/postgres and migration/shared, never migration/mysql.
import { DataSource } from "typeorm";

export default new DataSource({
  type: "postgres",
  url: process.env.DATABASE_URL,
  migrations: [__dirname + "/migration/postgres/*.ts", __dirname + "/migration/shared/*.ts"],
});

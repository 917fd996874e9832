// Our own TypeORM project: the migrations in ./migrations, applied to DATABASE_URL.
import { DataSource } from "typeorm";

export default new DataSource({
  type: "postgres",
  url: process.env.DATABASE_URL,
  migrations: [__dirname + "/migrations/*.ts"],
});

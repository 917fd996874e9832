import { MigrationInterface, QueryRunner } from "typeorm";

export class Items1706745600000 implements MigrationInterface {
  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "items" ("id" SERIAL PRIMARY KEY, "org_id" integer NOT NULL REFERENCES "organizations" ("id"), "quantity" integer NOT NULL DEFAULT 0)`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "items"`);
  }
}

import { MigrationInterface, QueryRunner } from "typeorm";

export class Workspaces1704067200000 implements MigrationInterface {
  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "workspaces" ("id" SERIAL PRIMARY KEY, "slug" varchar(64))`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "workspaces"`);
  }
}

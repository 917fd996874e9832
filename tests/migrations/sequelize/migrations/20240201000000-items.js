"use strict";

module.exports = {
  async up(queryInterface, Sequelize) {
    await queryInterface.createTable("items", {
      id: { type: Sequelize.INTEGER, primaryKey: true, autoIncrement: true },
      org_id: { type: Sequelize.INTEGER, allowNull: false, references: { model: "organizations", key: "id" } },
      quantity: { type: Sequelize.INTEGER, allowNull: false, defaultValue: 0 },
    });
  },
  async down(queryInterface) {
    await queryInterface.dropTable("items");
  },
};

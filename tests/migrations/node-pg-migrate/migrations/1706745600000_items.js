exports.up = (pgm) => {
  pgm.createTable("items", {
    id: "id",
    org_id: { type: "integer", notNull: true, references: "organizations" },
    quantity: { type: "integer", notNull: true, default: 0 },
  });
};

exports.down = (pgm) => {
  pgm.dropTable("items");
};

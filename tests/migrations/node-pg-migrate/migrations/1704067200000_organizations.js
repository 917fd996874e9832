exports.up = (pgm) => {
  pgm.createTable("organizations", { id: "id", name: { type: "text", notNull: true } });
};

exports.down = (pgm) => {
  pgm.dropTable("organizations");
};

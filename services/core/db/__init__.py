"""PostgreSQL access: the schema, the async engine and the migrations."""

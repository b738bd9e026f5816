// libs/db: the database: PostgreSQL or PGlite behind one Database/Sql interface, migrations, storable values, writer locks, SQL fragments.
// The entry file: the rest of the code imports this lib only from here (docs/architecture.md).
export * from './conditions.js';
export * from './database.js';
export * from './insert-select.js';
export * from './storable.js';
export * from './traced-database.js';
export * from './typeorm-database.js';
export * from './writer-lock.js';
export * from './partitions.js';

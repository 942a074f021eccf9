//! The registry's storage side: rows decoded by column name into checked
//! types (row.rs). SQL lives in registry.rs beside the aggregates it reads.

pub mod row;

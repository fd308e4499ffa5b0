//! Unit tests of the remote against `object_store`'s in-memory and local-folder stores.

//! Sources: where lines come from.
//!
//! Today one kind, [`tail`]: files matched by globs, followed across
//! rotation, truncation and restarts. Each source kind owns its
//! configuration and its checks ([`tail::config`]); the file identity types
//! the sources hand on live in the leaf [`crate::file`].

pub mod tail;

//! Integration tests that start the real gapless server and drive the real clients.
//!
//! Not implemented yet: this crate is an empty member of the workspace so that the
//! layout is in place. It exports nothing.
#![forbid(unsafe_code)]
